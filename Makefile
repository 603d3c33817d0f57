# Every entry point a person types. `make run` and `make test` are all a fresh machine needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= embedded,operator,providers,test
# A lively demo on the embedded default: each symbol ticks four times a second.
export TICK_INTERVAL ?= 0.25

.PHONY: install run test test-unit test-integration lint format bench controlplane clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	@touch $@

run: install  ## the whole stack on the embedded default (Ctrl-C stops it)
	$(VENV)/bin/tradebot up

test: install  ## every test: unit, integration (real Redis/PostgreSQL), k8s (real API server)
	$(PY) -m pytest

test-unit: install
	$(PY) -m pytest tests/unit

test-integration: install
	$(PY) -m pytest tests/integration

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install  ## throughput and latency figures, each against a baseline in the same run
	$(PY) bench/pipeline.py

controlplane:  ## build (once, cached outside the repo) the Kubernetes control plane for tests
	bash scripts/controlplane/build.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .tradebot
