"""The service image, built and run by a real Docker engine (tests/docker_engine.py provides the fixtures)."""
