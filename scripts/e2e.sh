#!/usr/bin/env bash
# The whole Kubernetes path on a throwaway kind cluster, for a machine with Docker:
#   1. create a kind cluster from k8s/kind-config.yaml (named tradebot-e2e)
#   2. build both images (docker/*.Dockerfile) and load them into the cluster
#   3. helm install charts/tradebot (operator, CRD, RBAC) and wait for the operator
#   4. kubectl apply -f k8s/stack.yaml (synthetic data) and wait for the stack to be Ready
#   5. curl the API's /health and the dashboard through kubectl port-forward, run `helm test`
#   6. delete the cluster (KEEP_CLUSTER=1 keeps it, to look around)
#
# Needs: docker (a running engine), kind >= v0.33, kubectl, helm v3, curl.
# Usage: scripts/e2e.sh        (make e2e)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER="${E2E_CLUSTER:-tradebot-e2e}"
NAMESPACE="${E2E_NAMESPACE:-tradebot}"
RELEASE=tradebot
STACK=demo
VERSION="$(awk '$1 == "appVersion:" {gsub(/"/, "", $2); print $2}' "$ROOT/charts/tradebot/Chart.yaml")"
# The names the chart and the CRD default to, so k8s/stack.yaml works unchanged.
SERVICES_IMAGE="ghcr.io/tradebot/tradebot:$VERSION"
OPERATOR_IMAGE="ghcr.io/tradebot/tradebot-operator:$VERSION"
API_PORT="${E2E_API_PORT:-18000}"
DASHBOARD_PORT="${E2E_DASHBOARD_PORT:-18001}"
KUBECONFIG_FILE="$(mktemp)"
export KUBECONFIG="$KUBECONFIG_FILE"
PF_PID=

log() { printf '\n[e2e] %s\n' "$*" >&2; }
die() { printf '[e2e] FAILED: %s\n' "$*" >&2; exit 1; }

for tool in docker kind kubectl helm curl; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is needed (see README: Kubernetes quick start)"
done
docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info failed)"

diagnose() {
  log "diagnostics"
  kubectl get tradingstacks,deployments,statefulsets,pods,pvc -n "$NAMESPACE" -o wide || true
  kubectl describe tradingstack "$STACK" -n "$NAMESPACE" || true
  kubectl logs -n "$NAMESPACE" -l app.kubernetes.io/component=operator --tail=100 || true
  kubectl get events -n "$NAMESPACE" --sort-by=.lastTimestamp | tail -40 || true
}

cleanup() {
  local status=$?
  if [[ -n "$PF_PID" ]]; then
    # shellcheck disable=SC2086  # one or two pids
    kill $PF_PID 2>/dev/null || true
  fi
  if (( status != 0 )); then diagnose; fi
  if [[ "${KEEP_CLUSTER:-0}" == 1 ]]; then
    log "keeping cluster $CLUSTER (kind delete cluster --name $CLUSTER); kubeconfig: $KUBECONFIG_FILE"
  else
    log "deleting cluster $CLUSTER"
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
    rm -f "$KUBECONFIG_FILE"
  fi
  exit "$status"
}
trap cleanup EXIT

log "1/6 kind cluster $CLUSTER"
kind create cluster --name "$CLUSTER" --config "$ROOT/k8s/kind-config.yaml" --kubeconfig "$KUBECONFIG_FILE" --wait 120s

log "2/6 images $SERVICES_IMAGE and $OPERATOR_IMAGE"
revision="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
created="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
for spec in "services:$SERVICES_IMAGE" "operator:$OPERATOR_IMAGE"; do
  docker build -f "$ROOT/docker/${spec%%:*}.Dockerfile" -t "${spec#*:}" \
    --build-arg VERSION="$VERSION" --build-arg REVISION="$revision" --build-arg CREATED="$created" "$ROOT"
  kind load docker-image "${spec#*:}" --name "$CLUSTER"
done

log "3/6 helm install $RELEASE"
helm install "$RELEASE" "$ROOT/charts/tradebot" -n "$NAMESPACE" --create-namespace --wait --timeout 5m
kubectl wait --for=condition=Established crd/tradingstacks.tradebot.dev --timeout=60s

log "4/6 stack $STACK (k8s/stack.yaml)"
kubectl apply -n "$NAMESPACE" -f "$ROOT/k8s/stack.yaml"
kubectl wait -n "$NAMESPACE" "tradingstack/$STACK" --for=jsonpath='{.status.phase}'=Ready --timeout=10m
kubectl get tradingstack "$STACK" -n "$NAMESPACE"

log "5/6 API and dashboard through port-forward"
kubectl port-forward -n "$NAMESPACE" "svc/$STACK-api" "$API_PORT:8000" >/dev/null 2>&1 &
PF_PID=$!
kubectl port-forward -n "$NAMESPACE" "svc/$STACK-dashboard" "$DASHBOARD_PORT:8001" >/dev/null 2>&1 &
PF_PID="$PF_PID $!"
# The stack's token, from the Secret the operator generated (the API refuses requests without it).
TOKEN="$(kubectl get secret -n "$NAMESPACE" "$STACK-auth" -o jsonpath='{.data.AUTH_TOKEN}' | base64 -d)"
AUTH="Authorization: Bearer $TOKEN"
for _ in $(seq 60); do
  curl -fsS -H "$AUTH" "http://127.0.0.1:$API_PORT/health" >/dev/null 2>&1 && break
  sleep 2
done
curl -fsS -H "$AUTH" "http://127.0.0.1:$API_PORT/health"; echo
curl -fsS -H "$AUTH" "http://127.0.0.1:$API_PORT/services" | head -c 2000; echo
curl -fsS -o /dev/null -w 'dashboard: HTTP %{http_code}\n' -H "$AUTH" "http://127.0.0.1:$DASHBOARD_PORT/"
curl -sS -o /dev/null -w 'without the token: HTTP %{http_code}\n' "http://127.0.0.1:$API_PORT/services"
helm test "$RELEASE" -n "$NAMESPACE" --logs --timeout 3m
# shellcheck disable=SC2086  # two pids
kill $PF_PID 2>/dev/null || true
PF_PID=

log "6/6 passed"
