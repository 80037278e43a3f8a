# Whisper on a Google Cloud GPU VM. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS ?= faster,ops,dev

# The service's own settings (see README "Configuration"); make run passes the environment through.
PORT ?= 5000
WHISPER_MODEL ?= turbo
export PORT WHISPER_MODEL

.PHONY: help install system-deps run checkpoint test lint format pytest bench loadtest clean

help: ## List the targets.
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/^[^:]*://' | \
	  awk 'BEGIN{FS=":.*## "} {printf "  %-14s %s\n", $$1, $$2}' | sort

# ---------------------------------------------------------------- set-up
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q -e '.[$(EXTRAS)]'
	@touch $@

install: $(STAMP) ## Create .venv and install every Python dependency (idempotent).

system-deps: ## Install the Debian packages the tests need (ffmpeg, sshd, prometheus, ...).
	scripts/system-deps.sh test

# ---------------------------------------------------------------- the service
run: $(STAMP) ## Serve the API on :$(PORT) with gunicorn, exactly as the container does.
	@scripts/system-deps.sh run
	$(BIN)/gunicorn -c gunicorn.conf.py 'service:create_app()'

checkpoint: $(STAMP) ## Write a small random-weight checkpoint for offline runs: build/tiny-random.pt.
	$(BIN)/python -m service.testing build/tiny-random.pt

# ---------------------------------------------------------------- checks
test: $(STAMP) system-deps lint pytest ## Everything CI runs: linters, then the whole test suite.

lint: $(STAMP) ## ruff check + ruff format --check.
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## Apply ruff format and ruff's safe fixes.
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

pytest: $(STAMP)
	$(BIN)/pytest -q $(PYTEST_ARGS)

bench: $(STAMP) ## Side-by-side benchmark; writes docs/benchmarks.md (see bench/README.md).
	@scripts/system-deps.sh test
	$(BIN)/python -m bench $(BENCH_ARGS)

clean: ## Remove the virtualenv and build output.
	rm -rf $(VENV) build .pytest_cache .ruff_cache
