# Every entry point a person types. `make run` and `make test` are all a fresh machine needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= embedded,operator,providers,test
# A lively demo on the embedded default: each symbol ticks four times a second.
export TICK_INTERVAL ?= 0.25

.PHONY: install run test test-unit test-integration lint format bench controlplane clean browser vendor-chart bench-api bench-dashboard

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	@touch $@

run: install  ## the whole stack on the embedded default (Ctrl-C stops it)
	$(VENV)/bin/tradebot up

test: install browser  ## every test: unit, integration (real Redis/PostgreSQL), k8s (real API server)
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

browser:  ## Debian's Chromium for the dashboard's browser tests (skipped when already installed)
	bash scripts/install-browser.sh

# The dashboard serves its chart library itself (clusters are offline): the standalone build of a
# pinned lightweight-charts from npm, with its licence, committed under the package's static dir.
CHART_VERSION ?= 5.2.1
CHART_DIR := services/tradebot/dashboard/static/vendor
vendor-chart:  ## refresh the vendored lightweight-charts build from npm
	tmp=$$(mktemp -d) && cd $$tmp && npm pack --silent lightweight-charts@$(CHART_VERSION) >/dev/null \
	  && tar xzf lightweight-charts-$(CHART_VERSION).tgz && cd - >/dev/null \
	  && cp $$tmp/package/dist/lightweight-charts.standalone.production.js $(CHART_DIR)/ \
	  && cp $$tmp/package/LICENSE $(CHART_DIR)/lightweight-charts.LICENSE && rm -rf $$tmp

bench-api: install  ## API latency on 10 million ticks (p50/p99) against naive queries
	$(PY) bench/api.py

bench-dashboard: install  ## WebSocket fan-out: browsers served at the live tick rate
	$(PY) bench/dashboard.py

controlplane:  ## build (once, cached outside the repo) the Kubernetes control plane for tests
	bash scripts/controlplane/build.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .tradebot
