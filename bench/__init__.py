"""Benchmarks behind `make bench`: side by side in one run, equal work on every side (docs/performance.md)."""
