"""Batching: jobs (a request's work), admission to the bounded queue, and the inference thread that packs
windows of many requests into model calls."""
