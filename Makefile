# Two commands do everything on a fresh machine:
#   make pipeline   the main job: data -> train -> evaluate -> register -> deploy (real Triton)
#   make test       the default test suite (slow tests: make test-all)
# Both bootstrap .venv from requirements.lock first.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup pipeline test test-all lint mlflow-ui clean

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@echo "==> creating $(VENV) and installing pinned dependencies (requirements.lock)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

pipeline: setup
	$(BIN)/mlops pipeline

test: setup
	$(BIN)/pytest

test-all: setup
	$(BIN)/pytest -m ""

lint: setup
	$(BIN)/ruff check model tests

# Opens the MLflow UI on the local store (.mlops/mlflow.db) at http://127.0.0.1:5000
mlflow-ui: setup
	$(BIN)/mlflow ui --backend-store-uri sqlite:///.mlops/mlflow.db --host 127.0.0.1 --port 5000

clean:
	rm -rf .mlops
