# Whisper on a Google Cloud GPU VM. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS ?= faster,tools,ops,dev

# The service's own settings (docs/configuration.md, PORT among them); make run passes the environment through.
# Without WHISPER_MODEL, `make run` serves the embedded tiny.en (tools/embedded.py): offline, real weights.

.PHONY: help install install-ops system-deps run checkpoint test lint format pytest bench bench-speech bench-container configuration-docs loadtest clean

help: ## List the targets.
	@awk 'BEGIN{FS=":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# ---------------------------------------------------------------- set-up
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q -e '.[$(EXTRAS)]'
	$(BIN)/pip install -q --no-deps $$($(BIN)/python deploy/pins.py --extras-only pyproject.toml nodeps)
	$(BIN)/pip install -q --no-deps $$($(BIN)/python deploy/pins.py --extras-only pyproject.toml campplus)
	@touch $@

install: $(STAMP) ## Create .venv and install every Python dependency (idempotent).

# An operator's laptop: what `make deploy` runs (the `ops` extra: pulumi, pulumi-gcp, fabric, ansible; and
# the deploy code, which imports nothing else) without the service's multi-GB CUDA torch. It marks the venv
# installed, so the deploy steps do not pull everything; `rm $(STAMP) && make install` adds the rest.
install-ops: ## Create .venv with only what make deploy needs (no torch); see make install for everything.
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q --no-deps -e .
	$(BIN)/pip install -q $$($(BIN)/python deploy/pins.py --extras-only pyproject.toml ops)
	@touch $(STAMP)

system-deps: ## Install the Debian packages the tests need (ffmpeg, sshd, prometheus, ...).
	scripts/system-deps.sh test

# ---------------------------------------------------------------- the service
run: $(STAMP) ## Serve the API on 127.0.0.1:PORT with gunicorn (API_HOST opens it; embedded tiny.en, and base by request).
	@scripts/system-deps.sh run
	@model="$${WHISPER_MODEL:-$$($(BIN)/python -m tools.embedded "$${WHISPER_ENGINE:-}")}" || exit 2; \
	  models="$${MODELS:-}"; \
	  if [ -z "$${WHISPER_MODEL:-}" ] && [ -z "$${MODELS+set}" ]; then \
	    models="base=$$($(BIN)/python -m tools.embedded "$${WHISPER_ENGINE:-}" base)" || exit 2; fi; \
	  echo "serving WHISPER_MODEL=$$model MODELS=$$models"; \
	  WHISPER_MODEL="$$model" MODELS="$$models" exec $(BIN)/gunicorn -c gunicorn.conf.py 'service:create_app()'

checkpoint: $(STAMP) ## Write a small random-weight checkpoint (multilingual mechanics): build/tiny-random.pt.
	$(BIN)/python -m tools.checkpoints build/tiny-random.pt

# ---------------------------------------------------------------- checks
test: $(STAMP) system-deps lint pytest ## Everything CI runs: linters, then the whole test suite.

lint: $(STAMP) lint-ansible lint-docker lint-infra lint-monitoring ## ruff check + ruff format --check (+ the area linters it depends on).
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## Apply ruff format and ruff's safe fixes.
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

pytest: $(STAMP)
	$(BIN)/pytest -q $(PYTEST_ARGS)

BENCH_ARGS ?= --engines
SPEECH_ARGS ?=
bench: bench-speech ## Real speech vs the peers (docs/benchmarks-speech.md), then random weights -> docs/benchmarks.md (BENCH_ARGS="--engines --device cuda --dims large-v3-turbo").
	$(BIN)/python -m bench $(BENCH_ARGS)

bench-speech: $(STAMP) ## Real speech only: the service vs a peer server, the pipeline and transcribe(), real tiny.en (SPEECH_ARGS="--quick").
	@scripts/system-deps.sh test
	$(BIN)/python -m bench.speech $(SPEECH_ARGS)

.PHONY: bench-peer bench-gpu
bench-peer: $(STAMP) ## The peer server's own venv, build/peer-server/ (bench-speech makes it too; bench-gpu needs it made before).
	$(BIN)/python -m bench.peer_server

bench-gpu: ## bench-speech's workloads on a CUDA GPU, large-v3-turbo dims, random weights, offline -> docs/benchmarks-gpu.md.
	PYTHON=$(BIN)/python bench/gpu.sh $(GPU_ARGS)

.PHONY: bench-diarization
bench-diarization: $(STAMP) ## Speakers: DER, speaker count, WER, CPU overhead on espeak-ng conversations -> docs/accuracy.md (DIARIZATION_ARGS="--quick").
	$(BIN)/python -m bench.diarization $(DIARIZATION_ARGS)

.PHONY: bench-jobs
bench-jobs: $(STAMP) ## Background jobs through SIGKILLs of the whole service: lost, identical results, callbacks (JOBS_ARGS="--kills 5").
	@scripts/system-deps.sh test
	$(BIN)/python -m bench.jobs $(JOBS_ARGS)

bench-container: image-test ## The image against make run on one long real-speech file (docs/benchmarks-container.md).
	$(BIN)/python -m bench.container $(CONTAINER_ARGS)

configuration-docs: $(STAMP) ## Regenerate docs/configuration.md from the settings (a test checks it is current).
	$(BIN)/python -m tools.configuration_docs

clean: ## Remove the virtualenv and build output.
	rm -rf $(VENV) build .pytest_cache .ruff_cache

# ---------------------------------------------------------------- host configuration (Ansible)
.PHONY: lint-ansible configure test-ansible
# ansible-lint wants the venv's tools on PATH; ansible.cfg sits beside the playbook, not in the cwd.
ANSIBLE_ENV := PATH="$(CURDIR)/$(BIN):$$PATH" ANSIBLE_CONFIG=ansible/ansible.cfg
# the stack outputs `make outputs` writes (deploy/paths.py owns the path), read by every step after it
ifndef OUTPUTS
OUTPUTS := $(shell $(PYTHON) deploy/paths.py outputs)
endif

lint-ansible: $(STAMP) ## ansible-lint (production profile) and ansible-playbook --syntax-check.
	$(ANSIBLE_ENV) $(BIN)/ansible-lint -q -c ansible/.ansible-lint ansible/
	$(ANSIBLE_ENV) ANSIBLE_HOST_PATTERN_MISMATCH=ignore \
	  $(BIN)/ansible-playbook --syntax-check -i localhost, ansible/site.yml

configure: ## Wait for the VM's startup script (driver, Docker, toolkit), then configure it with Ansible; needs `make outputs`.
	@test -x $(BIN)/ansible-playbook || { echo "no ansible-playbook in $(BIN): run make install" >&2; exit 1; }
	@test -f $(OUTPUTS) || { echo "no $(OUTPUTS): run make outputs (after pulumi up)" >&2; exit 1; }
	DEPLOY_OUTPUTS=$(OUTPUTS) $(BIN)/python -m deploy.stack wait-host
	$(ANSIBLE_ENV) ANSIBLE_INVENTORY_UNPARSED_FAILED=true WHISPER_OUTPUTS=$(OUTPUTS) $(BIN)/ansible-playbook -i ansible/inventory.py ansible/site.yml $(ANSIBLE_ARGS)

test-ansible: $(STAMP) ## Only the Ansible tests: a real run of site.yml on this machine (root), twice.
	$(BIN)/pytest -q tests/ansible $(PYTEST_ARGS)

# ---------------------------------------------------------------- image and deploy
# `make deploy` = cloud-preflight -> image -> push -> infra -> configure -> app-deploy -> smoke; each step is its own target.
# DRY_RUN=1 prints every command the steps would run (make -n); the preflight still checks the tools.
# A stack in fleet mode (its CONFIG sets replicas/minReplicas/maxReplicas: `pulumi config`, read before
# anything runs) rolls the tag through Pulumi instead: image -> push -> fleet-image -> infra -> fleet-wait -> smoke.
# smoke then checks that /readyz reports the tag just deployed.
.PHONY: lint-docker image image-test push app-deploy rollback smoke deploy deploy-preflight cloud-preflight fleet-image fleet-wait start test-deploy
IMAGE ?= $(if $(DOCKERHUB_USERNAME),$(DOCKERHUB_USERNAME)/whisper-gpu-service)
TAG ?= $(shell git describe --always --dirty --abbrev=12 --exclude '*' 2>/dev/null)
DEPLOY_OUTPUTS ?= $(OUTPUTS)
DEPLOY_MODE ?= $(shell $(BIN)/python -m deploy.stack mode --stack $(STACK) --pulumi $(PULUMI) 2>/dev/null)
FAB := $(BIN)/fab -r $(CURDIR)
PREFLIGHT := $(BIN)/python -m deploy.preflight
export IMAGE DEPLOY_OUTPUTS
DEPLOY_STEPS = cloud-preflight image push $(if $(filter fleet,$(DEPLOY_MODE)),fleet-image infra fleet-wait,infra configure app-deploy) smoke
EXPECT_BUILD ?=

lint-docker: $(STAMP) ## hadolint the Dockerfile.
	$(BIN)/hadolint Dockerfile

image: $(STAMP) ## docker build the service image for linux/amd64, tagged with the commit id and latest (ALLOW_DIRTY=1, EXTRA_CA=pem, BASE_IMAGE=).
	@$(PREFLIGHT) docker
	$(FAB) build --tag $(TAG) $(if $(ALLOW_DIRTY),--allow-dirty)

push: $(STAMP) ## Push the image (tag and latest) to Docker Hub (DOCKERHUB_USERNAME, DOCKERHUB_TOKEN).
	@$(PREFLIGHT) docker dockerhub
	$(FAB) push --tag $(TAG)

fleet-image: ## Fleet mode: set the stack's dockerImage to this tag (the next pulumi up rolls it out).
	$(PULUMI) config set dockerImage $(IMAGE):$(TAG) --stack $(STACK)

start: ## Start the stopped single VM (idleStopMinutes, Spot preemption) and wait for /readyz 200 through its URL.
	@test -f $(DEPLOY_OUTPUTS) || { echo "no $(DEPLOY_OUTPUTS): run make outputs first" >&2; exit 1; }
	$(PYTHON) -m deploy.stack start

fleet-wait: ## Fleet mode: wait until every VM runs the new template and the group is stable (gcloud wait-until).
	$(BIN)/python -m deploy.stack wait-fleet

app-deploy: $(STAMP) ## Blue/green deploy of the tag to the VM with Fabric (HOST=user@addr overrides the stack's ip).
	$(FAB) deploy --tag $(TAG) $(if $(HOST),--host $(HOST))

rollback: $(STAMP) ## Put the previous tag back on the VM (blue/green, same checks).
	$(FAB) rollback $(if $(HOST),--host $(HOST))

smoke: $(STAMP) ## Transcribe one clip through the stack's public URL (API_KEY or API_KEYS; EXPECT_BUILD=tag checks /readyz).
	$(BIN)/python scripts/smoke.py $(if $(URL),--url $(URL),--outputs $(DEPLOY_OUTPUTS)) $(if $(EXPECT_BUILD),--expect-build $(EXPECT_BUILD))

deploy-preflight: $(STAMP)
	@$(PREFLIGHT) docker dockerhub pulumi gcloud gcloud-credentials fab $(if $(filter fleet,$(DEPLOY_MODE)),,ansible)
	@test -n "$(DEPLOY_MODE)" || $(BIN)/python -m deploy.stack mode --stack $(STACK) --pulumi $(PULUMI) >/dev/null

cloud-preflight: $(STAMP) ## Before the image build: an active gcloud account, Compute Engine's API, GPU quota for the stack.
	$(BIN)/python -m deploy.cloudcheck --stack $(STACK) --pulumi $(PULUMI)

deploy: deploy-preflight ## cloud-preflight -> image -> push -> infra -> configure -> app-deploy -> smoke (DRY_RUN=1: print only).
	@$(MAKE) --no-print-directory $(if $(DRY_RUN),-n) $(DEPLOY_STEPS) TAG=$(TAG) DEPLOY_MODE=$(DEPLOY_MODE) EXPECT_BUILD=$(TAG)

test-deploy: $(STAMP) ## Only the deploy tests (sshd on loopback, the real Docker engine and a local registry).
	$(BIN)/pytest -q tests/deploy $(PYTEST_ARGS)

image-test: $(STAMP) ## Build the real image with a real Docker engine (dockerd started if none runs), run and check it.
	@scripts/system-deps.sh test
	$(BIN)/pytest -q tests/image $(PYTEST_ARGS)

# --- provisioning
# The Pulumi program in infra/ (docs/provisioning.md). STACK picks the stack; the CLI is
# not a Python package, so each target first checks it is installed and names the fix if not.
# `infra` refreshes $(OUTPUTS) after every `pulumi up`, so `configure` and `deploy` read current values.
.PHONY: infra infra-preview infra-destroy outputs infra-test lint-infra
STACK ?= dev
PULUMI ?= pulumi
PULUMI_INSTALL := https://www.pulumi.com/docs/iac/download-install/ (or: curl -fsSL https://get.pulumi.com | sh)
need-pulumi = @command -v $(PULUMI) >/dev/null 2>&1 || \
	{ echo "pulumi CLI not found; install it: $(PULUMI_INSTALL)" >&2; exit 1; }

infra: $(STAMP) ## Create or update stack $(STACK)'s cloud resources (pulumi up --yes; single VM: next GPU zone when out of stock), then `outputs`.
	$(need-pulumi)
	$(BIN)/python -m deploy.zonefallback --stack $(STACK) --pulumi $(PULUMI)
	@$(MAKE) --no-print-directory outputs

infra-preview: $(STAMP) ## Show what `make infra` would change; changes nothing.
	$(need-pulumi)
	$(PULUMI) preview --stack $(STACK)

infra-destroy: $(STAMP) ## Delete stack $(STACK)'s cloud resources (asks first; YES=1 does not).
	$(need-pulumi)
	$(PULUMI) destroy --stack $(STACK) $(if $(YES),--yes)

outputs: ## Write stack $(STACK)'s outputs (ip, url, mode, ...) to $(OUTPUTS) for Ansible and Fabric.
	$(need-pulumi)
	@mkdir -p $(dir $(OUTPUTS))
	$(PULUMI) stack output --json --stack $(STACK) >$(OUTPUTS).tmp && mv $(OUTPUTS).tmp $(OUTPUTS)
	@echo "wrote $(OUTPUTS)"

infra-test: $(STAMP) ## Only the provisioning tests: the Pulumi program under mocks, startup script.
	$(BIN)/pytest -q tests/infra $(PYTEST_ARGS)

lint-infra: ## shellcheck the VM startup script and scripts/.
	@command -v shellcheck >/dev/null || { echo "shellcheck missing: run make system-deps" >&2; exit 1; }
	shellcheck infra/startup.sh scripts/*.sh

# ---------------------------------------------------------------- engines (openai-whisper, faster-whisper)
.PHONY: convert test-engines bench-engines
QUANTIZATION ?= float16

convert: $(STAMP) ## Offline, verified: SRC=model.pt DST=model-ct2/ (QUANTIZATION=float16), or SRC=model-ct2/ DST=model.pt.
	@test -n "$(SRC)" -a -n "$(DST)" || { echo "usage: make convert SRC=model.pt DST=model-ct2/ (or SRC=model-ct2/ DST=model.pt)" >&2; exit 2; }
	@if [ -d "$(SRC)" ]; then $(BIN)/python -m tools.import_ct2 $(SRC) $(DST); \
	  else $(BIN)/python -m tools.convert $(SRC) $(DST) --quantization $(QUANTIZATION); fi

test-engines: $(STAMP) ## Only the engine and converter tests.
	$(BIN)/pytest -q tests/engines $(PYTEST_ARGS)

bench-engines: $(STAMP) ## In-process engine benchmark only (BENCH_ENGINES_ARGS="--dims test" for a quick one).
	$(BIN)/python -m bench.engines $(BENCH_ENGINES_ARGS)

# ---------------------------------------------------------------- monitoring (Prometheus, Grafana)
.PHONY: lint-monitoring dashboards-json dashboards cost test-monitoring
PROMTOOL ?= promtool
# The host's loopback ports are the deploy's knobs (DEPLOY_GRAFANA_PORT, DEPLOY_PROMETHEUS_PORT: deploy/config.py
# owns their defaults), forwarded to the same ports here unless set; read only when a target uses them.
deploy-knob = $(shell $(BIN)/python -c 'from deploy.config import DeployConfig; print(DeployConfig.from_env().$(1))')
GRAFANA_REMOTE_PORT ?= $(call deploy-knob,grafana_port)
PROMETHEUS_REMOTE_PORT ?= $(call deploy-knob,prometheus_port)
GRAFANA_LOCAL_PORT ?= $(GRAFANA_REMOTE_PORT)
PROMETHEUS_LOCAL_PORT ?= $(PROMETHEUS_REMOTE_PORT)
TUNNEL_SSH ?= ssh

lint-monitoring: $(STAMP) ## promtool check config/rules, promtool test rules; dashboards JSON matches its generator.
	@command -v $(PROMTOOL) >/dev/null || { echo "no promtool: run make system-deps" >&2; exit 1; }
	@# prometheus.yml with the targets files the VM gets beside it (deploy/monitoring.py), so promtool checks both
	@copy=$$(mktemp -d) && trap 'rm -rf "$$copy"' EXIT && cp -r monitoring/prometheus "$$copy/" && \
	  $(BIN)/python -m deploy.monitoring "$$copy" >/dev/null && \
	  $(PROMTOOL) check config "$$copy/prometheus/prometheus.yml"
	$(PROMTOOL) check rules monitoring/prometheus/rules/*.yml
	$(PROMTOOL) test rules monitoring/prometheus/tests/*.yaml
	$(BIN)/python monitoring/grafana/build_dashboards.py --check

dashboards-json: $(STAMP) ## Regenerate monitoring/grafana/dashboards/*.json with grafana-foundation-sdk.
	$(BIN)/python monitoring/grafana/build_dashboards.py

# The deploy's one SSH route (deploy/sshroute.py: OS Login user, gcloud's key, Google's IAP tunnel), the same
# as Fabric's and the Ansible inventory's; the system python3 runs it: a tunnel needs no virtualenv.
dashboards: ## SSH tunnel (OS Login, IAP) to the VM's Grafana and Prometheus; prints the URLs (SSH_USER overrides the login).
	@test -f $(DEPLOY_OUTPUTS) || { echo "no $(DEPLOY_OUTPUTS): run make outputs first" >&2; exit 1; }
	@echo "Grafana     http://127.0.0.1:$(GRAFANA_LOCAL_PORT)  (user admin, password GRAFANA_ADMIN_PASSWORD)"; \
	  echo "Prometheus  http://127.0.0.1:$(PROMETHEUS_LOCAL_PORT)"; \
	  echo "tunnel open; Ctrl-C closes it"; \
	  $(if $(SSH_USER),WHISPER_SSH_USER=$(SSH_USER)) TUNNEL_SSH="$(TUNNEL_SSH)" exec $(PYTHON) -m deploy.sshroute tunnel \
	    -L 127.0.0.1:$(GRAFANA_LOCAL_PORT):127.0.0.1:$(GRAFANA_REMOTE_PORT) \
	    -L 127.0.0.1:$(PROMETHEUS_LOCAL_PORT):127.0.0.1:$(PROMETHEUS_REMOTE_PORT)

# The same route as `dashboards`, for one query: a tunnel to a free local port, the whisper.cost records, closed.
cost: ## Print the cost per audio hour (now, best hour of the day) from the VM's Prometheus (PROMETHEUS_URL: no tunnel).
	@test -n "$(PROMETHEUS_URL)" -o -f $(DEPLOY_OUTPUTS) || { echo "no $(DEPLOY_OUTPUTS): run make outputs first" >&2; exit 1; }
	@$(if $(SSH_USER),WHISPER_SSH_USER=$(SSH_USER)) TUNNEL_SSH="$(TUNNEL_SSH)" PROMETHEUS_REMOTE_PORT=$(PROMETHEUS_REMOTE_PORT) \
	  PROMETHEUS_URL="$(PROMETHEUS_URL)" $(PYTHON) -m deploy.cost

test-monitoring: $(STAMP) ## Only the monitoring tests (promtool, dashboards, compose, live Prometheus).
	$(BIN)/pytest -q tests/monitoring $(PYTEST_ARGS)

# --- reliability
# `make loadtest` overloads a local server (loopback only, bounded, stops by itself); the figures in
# docs/reliability.md come from it. LOADTEST_ARGS="--duration 20" for a shorter run (see bench/loadtest.py).
.PHONY: test-reliability
LOADTEST_ARGS ?=

loadtest: $(STAMP) ## 2x measured capacity for 60 s on loopback: only 200/429, p99, worker RSS (docs/reliability.md).
	@scripts/system-deps.sh run
	$(BIN)/python -m bench.loadtest $(LOADTEST_ARGS)

test-reliability: $(STAMP) ## Only the reliability tests: auth, SIGTERM, faults, fuzzing, hostile files, short load.
	$(BIN)/pytest -q tests/reliability $(PYTEST_ARGS)
