# Every entry point a person types. `make run` and `make test` are all a fresh machine needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= embedded,operator,providers,test
# A lively demo on the embedded default: each symbol ticks four times a second.
export TICK_INTERVAL ?= 0.25

.PHONY: install run test test-unit test-integration lint format bench bench-stages controlplane timescaledb clean browser vendor-chart bench-api bench-dashboard bench-strategy bench-backtest
.PHONY: images kind-up kind-load dev deploy port-forward kind-down e2e lint-docker lint-chart test-chart
.PHONY: operator crd bench-operator test-operator

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	@touch $@

run: install timescaledb  ## the whole stack on the embedded default (Ctrl-C stops it)
	$(VENV)/bin/tradebot up

test: install browser timescaledb  ## every test: unit, integration (real Redis/PostgreSQL/TimescaleDB), k8s (real API server)
	$(PY) -m pytest

# TimescaleDB for the embedded PostgreSQL: built once (about 4 minutes on 2 cores), cached outside
# the repo. Without a C compiler or cmake, `make run` says so and runs on plain PostgreSQL (the
# tests need it: they fail then, naming what is missing).
timescaledb: install  ## build (once, cached outside the repo) TimescaleDB for the embedded PostgreSQL
	@PYTHON=$(PY) bash scripts/timescaledb/build.sh >/dev/null || { status=$$?; [ $$status -eq 3 ] || exit $$status; }

test-unit: install
	$(PY) -m pytest tests/unit

test-integration: install
	$(PY) -m pytest tests/integration

lint: install  ## ruff (style, imports, formatting) and mypy (strict on common/ and the operator)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

BENCH_ARGS ?=
bench: install timescaledb  ## on TimescaleDB, then plain PostgreSQL: 60,000 ticks/s offered end to end (target 50,000) for 60 s: lost/duplicated, CPU µs per tick per process, latency, naive ratio, bytes per million ticks
	$(PY) bench/pipeline.py $(BENCH_ARGS)

bench-stages: install  ## each stage alone, today's code (issue 18's baseline) and the new code side by side
	$(PY) bench/stages.py $(BENCH_ARGS)

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

bench-strategy: install  ## events/s through 1 and 2 strategy processes; tick->signal p50/p99
	$(PY) bench/strategy.py

bench-backtest: install  ## backtest bars/s and ticks/s per core, data loading included, against a naive loop
	$(PY) bench/backtest.py

bench-api: install timescaledb  ## on TimescaleDB, then plain PostgreSQL: load rate, bytes per million ticks, bars p50/p99 per interval on 10 million ticks, against naive queries
	$(PY) bench/api.py

bench-dashboard: install  ## WebSocket fan-out: browsers served at the live tick rate (BENCH_ARGS=--page: page load)
	$(PY) bench/dashboard.py $(BENCH_ARGS)

controlplane:  ## build (once, cached outside the repo) the Kubernetes control plane for tests
	bash scripts/controlplane/build.sh

# ---------------------------------------------------------------------------- TradingStack operator
OPERATOR_ARGS ?=
operator: install  ## run the TradingStack operator against the current kubeconfig (OPERATOR_ARGS="-n NS")
	$(VENV)/bin/tradebot operator $(OPERATOR_ARGS)

crd: install  ## regenerate the chart's CRDs (from the operator's spec models) and its list of data sources
	$(PY) -m tradebot_operator crd > charts/tradebot/crds/tradingstacks.yaml
	$(PY) -m tradebot_operator backtest-crd > charts/tradebot/crds/backtests.yaml
	$(PY) -m tradebot_operator data-sources > charts/tradebot/files/data-sources.yaml

test-operator: install  ## the operator's unit tests and its acceptance tests on the control plane
	$(PY) -m pytest tests/operator tests/k8s/test_operator.py tests/k8s/test_operator_ha.py tests/k8s/test_kubectl_plugin.py \
		tests/k8s/test_backtest_resource.py

bench-operator: install  ## two copies, 200 stacks: apply -> Ready, status lag, memory, idle API rate, failover
	$(PY) bench/operator.py

# ---------------------------------------------------------------------------- Kubernetes
# Images, a kind cluster, the chart and a stack (README: Kubernetes quick start). These need
# docker, kind, kubectl and helm (skaffold for `make dev`); `make e2e` runs the whole path.
IMAGE_TAG ?= $(shell awk '$$1 == "appVersion:" {gsub(/"/, "", $$2); print $$2}' charts/tradebot/Chart.yaml)
SERVICES_IMAGE ?= ghcr.io/tradebot/tradebot:$(IMAGE_TAG)
OPERATOR_IMAGE ?= ghcr.io/tradebot/tradebot-operator:$(IMAGE_TAG)
KIND_CLUSTER ?= tradebot
K8S_NAMESPACE ?= tradebot
STACK ?= demo
STACK_FILE ?= k8s/stack.yaml
HELM_BIN ?= helm
HADOLINT ?= $(VENV)/bin/hadolint

images:  ## build the services and operator images (docker/*.Dockerfile)
	docker build -f docker/services.Dockerfile -t $(SERVICES_IMAGE) --build-arg VERSION=$(IMAGE_TAG) \
	  --build-arg REVISION=$$(git rev-parse --short HEAD) --build-arg CREATED=$$(date -u +%Y-%m-%dT%H:%M:%SZ) .
	docker build -f docker/operator.Dockerfile -t $(OPERATOR_IMAGE) --build-arg VERSION=$(IMAGE_TAG) \
	  --build-arg REVISION=$$(git rev-parse --short HEAD) --build-arg CREATED=$$(date -u +%Y-%m-%dT%H:%M:%SZ) .

kind-up:  ## a kind cluster from k8s/kind-config.yaml (kept if it exists)
	kind get clusters 2>/dev/null | grep -qx $(KIND_CLUSTER) || kind create cluster --name $(KIND_CLUSTER) --config k8s/kind-config.yaml --wait 120s

kind-load: images  ## build the images and load them into the kind cluster
	kind load docker-image $(SERVICES_IMAGE) $(OPERATOR_IMAGE) --name $(KIND_CLUSTER)

dev:  ## skaffold dev on the kind cluster: rebuild and redeploy on change, dashboard on :8001, API on :8000
	skaffold dev --port-forward=user $(if $(PROFILE),--profile $(PROFILE))

deploy:  ## helm install the chart, then the stack (STACK_FILE=k8s/stack-alpaca.yaml for real data)
	$(HELM_BIN) upgrade --install tradebot charts/tradebot -n $(K8S_NAMESPACE) --create-namespace --wait \
	  --set image.tag=$(IMAGE_TAG) --set tests.image.tag=$(IMAGE_TAG)
	kubectl apply -n $(K8S_NAMESPACE) -f $(STACK_FILE)
	@echo "kubectl get tstack -n $(K8S_NAMESPACE) -w   # until PHASE is Ready; then: make port-forward"

port-forward:  ## the dashboard on http://localhost:8001 and the API on http://localhost:8000 (Ctrl-C stops)
	kubectl port-forward -n $(K8S_NAMESPACE) svc/$(STACK)-api 8000:8000 & \
	  trap "kill $$! 2>/dev/null" EXIT; kubectl port-forward -n $(K8S_NAMESPACE) svc/$(STACK)-dashboard 8001:8001

kind-down:  ## delete the kind cluster
	kind delete cluster --name $(KIND_CLUSTER)

e2e:  ## the whole path on a throwaway kind cluster (needs Docker): build, load, install, stack Ready, curl, tear down
	bash scripts/e2e.sh

lint-docker: install  ## hadolint (from its wheel) on both Dockerfiles
	$(HADOLINT) docker/services.Dockerfile docker/operator.Dockerfile

lint-chart: controlplane  ## helm lint --strict with the pinned helm of the test control plane
	$$(bash scripts/controlplane/build.sh | tail -1)/helm lint --strict charts/tradebot

test-chart: install  ## the chart, manifests, images and wheel checks (tests/chart; k8s ones on the control plane)
	$(PY) -m pytest tests/chart

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .tradebot
