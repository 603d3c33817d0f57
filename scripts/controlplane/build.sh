#!/usr/bin/env bash
# Build (once) and cache the binaries of a real Kubernetes control plane for
# the test suite: kube-apiserver, kube-controller-manager, kube-scheduler,
# etcd, kwok (fake kubelet) and helm (v3, for the chart tests).
#
# Versions are pinned by the wrapper Go modules beside this script
# (kubernetes/, etcd/, kwok/, helm/: go.mod + go.sum + tools.go). The binaries
# are cached in
#   ${TRADEBOT_CACHE_DIR:-$HOME/.cache/tradebot}/controlplane/<key>/bin
# where <key> is derived from those pinned files, this script and the Go
# version, so a second run costs well under a second. A build goes to a
# temporary directory that is renamed into place only when every binary is
# there: an interrupted build never leaves a half cache.
#
# To bump a version: edit the require line in <dir>/go.mod (for kubernetes also
# the v0.X.Y of every replace, and compare the replace list with the one in the
# new tag's go.mod: `go mod download -json k8s.io/kubernetes@vX.Y.Z`), run
# `go mod tidy` in that directory, and commit go.mod and go.sum. The cache key
# changes by itself; the last three builds are kept.
#
# Usage: build.sh [--print-bin-dir | --check | --force | --help]
#   (no option)      build if needed; the last line of stdout is the bin dir
#   --print-bin-dir  print the bin dir without building (exit 1 if not built)
#   --check          exit 0 if the binaries are cached, 1 otherwise
#   --force          rebuild even if cached
# Progress goes to stderr; stdout carries only the bin dir.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib/build-cache.sh
source "$HERE/../lib/build-cache.sh"
BINARIES=(etcd kwok kube-apiserver kube-controller-manager kube-scheduler helm)

log() { printf '[controlplane] %s\n' "$*" >&2; }
die() { printf '[controlplane] ERROR: %s\n' "$*" >&2; exit 1; }

mode=build
case "${1:-}" in
  "") ;;
  --print-bin-dir) mode=print ;;
  --check) mode=check ;;
  --force) mode=force ;;
  -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "${BASH_SOURCE[0]}"; exit 0 ;;
  *) die "unknown option: $1 (try --help)" ;;
esac

# --- pinned versions, read from the wrapper modules' go.mod -----------------
pinned() { # module-dir module-path -> version from that go.mod's require
  awk -v m="$2" '$1 == m && $2 ~ /^v/ {print $2; exit} $1 == "require" && $2 == m {print $3; exit}' \
    "$HERE/$1/go.mod"
}
K8S_VERSION="$(pinned kubernetes k8s.io/kubernetes)"
ETCD_VERSION="$(pinned etcd go.etcd.io/etcd/server/v3)"
KWOK_VERSION="$(pinned kwok sigs.k8s.io/kwok)"
HELM_VERSION="$(pinned helm helm.sh/helm/v3)"
for v in K8S_VERSION ETCD_VERSION KWOK_VERSION HELM_VERSION; do
  [[ -n "${!v}" ]] || die "could not read $v from the go.mod files in $HERE"
done

# --- Go toolchain ------------------------------------------------------------
GO_MIN=1.26
if ! command -v go >/dev/null 2>&1; then
  if [[ "$mode" == build || "$mode" == force ]]; then
    die "the Go toolchain (go >= $GO_MIN) is needed to build the control-plane binaries, and 'go' is not on PATH. Install Go >= $GO_MIN (the official toolchain; Debian 12's golang-go is too old), put it on PATH and run again."
  fi
  GO_VERSION=none
else
  GO_VERSION="$(go env GOVERSION 2>/dev/null || echo unknown)"
fi

# --- cache key and directory -------------------------------------------------
key_input() {
  for d in kubernetes etcd kwok helm; do
    for f in go.mod go.sum tools.go; do
      printf '%s/%s\n' "$d" "$f"; cat "$HERE/$d/$f"
    done
  done
  grep -v '^[[:space:]]*#' "${BASH_SOURCE[0]}" # comments do not change the build
  printf 'go=%s os=%s\n' "$GO_VERSION" "$(uname -sm)"
}
HASH="$(key_input | sha256sum | cut -c1-12)"
KEY="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_helm-${HELM_VERSION}_${HASH}"
if [[ -z "${HOME:-}" ]]; then
  HOME="$(getent passwd "$(id -u)" | cut -d: -f6)"
  export HOME
fi
CACHE_ROOT="${TRADEBOT_CACHE_DIR:-$HOME/.cache/tradebot}/controlplane"
DEST="$CACHE_ROOT/$KEY"
BIN_DIR="$DEST/bin"

complete() {
  [[ -f "$DEST/.complete" ]] || return 1
  local b
  [[ -f "$DEST/share/kwok-stages.yaml" ]] || return 1
  for b in "${BINARIES[@]}"; do [[ -x "$BIN_DIR/$b" ]] || return 1; done
}

case "$mode" in
  print) echo "$BIN_DIR"; complete; exit $? ;; # exit status tells whether it is built
  check)
    if complete; then log "cached: $BIN_DIR"; exit 0; fi
    log "not built: $BIN_DIR"; exit 1 ;;
esac
if [[ "$mode" == build ]] && complete; then
  log "cached (k8s $K8S_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION, helm $HELM_VERSION)"
  echo "$BIN_DIR"
  exit 0
fi

go_ok="$(printf '%s\n%s\n' "go$GO_MIN" "$GO_VERSION" | sort -V | head -1)"
[[ "$go_ok" == "go$GO_MIN" ]] || die "Go $GO_VERSION is too old: the pinned modules need go >= $GO_MIN"

begin_build "$CACHE_ROOT" "$BIN_DIR" "$mode"
mkdir -p "$TMP/bin"

export CGO_ENABLED=0 GOWORK=off GOFLAGS="${GOFLAGS:+$GOFLAGS }-buildvcs=false"
JOBS="${CONTROLPLANE_GO_JOBS:-2}"
START=$SECONDS
BUILD_DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)"

k8s_ldflags() {
  local v="${K8S_VERSION#v}" major minor flags="-s -w" pkg
  major="${v%%.*}"; minor="${v#*.}"; minor="${minor%%.*}"
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    flags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$BUILD_DATE"
  done
  echo "$flags"
}

build() { # name module-dir package ldflags what
  local name="$1" dir="$2" pkg="$3" ldflags="$4" what="$5" t0=$SECONDS
  log "building $name from $what ... (elapsed $((SECONDS - START))s)"
  # In the background + wait, so that a signal reaches the trap at once.
  (cd "$HERE/$dir" && exec go build -trimpath -p "$JOBS" -ldflags "$ldflags" -o "$TMP/bin/$name" "$pkg" >&2) &
  CHILD=$!
  if ! wait "$CHILD"; then
    die "building $name failed. It needs the Go module $what and its dependencies (pinned in $HERE/$dir/go.mod); if the output above says a module could not be downloaded, check that the Go module proxy ($(go env GOPROXY)) is reachable, or that the modules are in the module cache ($(go env GOMODCACHE))."
  fi
  CHILD=
  log "built $name in $((SECONDS - t0))s (elapsed $((SECONDS - START))s)"
}

log "building control-plane binaries into $DEST (first build takes several minutes; $JOBS parallel jobs)"
# Fetch every module first so a missing one is named before any compiling.
for d in kubernetes etcd kwok helm; do
  log "downloading modules for $d (elapsed $((SECONDS - START))s)"
  (cd "$HERE/$d" && go mod download >&2) ||
    die "could not download the Go modules pinned in $HERE/$d/go.mod (GOPROXY=$(go env GOPROXY)); see the error above for the module that is missing"
done

K8S_LDFLAGS="$(k8s_ldflags)"
build etcd etcd go.etcd.io/etcd/server/v3 "-s -w" "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
build kwok kwok sigs.k8s.io/kwok/cmd/kwok \
  "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v} -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${K8S_VERSION#v}" \
  "sigs.k8s.io/kwok@$KWOK_VERSION"
for b in kube-apiserver kube-controller-manager kube-scheduler; do
  build "$b" kubernetes "k8s.io/kubernetes/cmd/$b" "$K8S_LDFLAGS" "k8s.io/kubernetes@$K8S_VERSION"
done
HELM_K8S="$(awk '$1 == "k8s.io/client-go" {print $2; exit}' "$HERE/helm/go.mod")" # v0.X.Y
HELM_K8S_MINOR="${HELM_K8S#v0.}"; HELM_K8S_MINOR="${HELM_K8S_MINOR%%.*}"
build helm helm helm.sh/helm/v3/cmd/helm \
  "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$HELM_K8S_MINOR -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$HELM_K8S_MINOR" \
  "helm.sh/helm/v3@$HELM_VERSION"

# kwok's controller has no built-in stages: ship the upstream default ones
# (what kwokctl uses) with the binary, from the pinned kwok module.
KWOK_SRC="$(cd "$HERE/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
mkdir -p "$TMP/share"
for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
         pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
  [[ -f "$KWOK_SRC/kustomize/stage/$f" ]] || die "kwok stage $f not found in $KWOK_SRC"
  printf -- '---\n' >>"$TMP/share/kwok-stages.yaml"
  cat "$KWOK_SRC/kustomize/stage/$f" >>"$TMP/share/kwok-stages.yaml"
done

cat >"$TMP/versions.txt" <<EOF
kubernetes $K8S_VERSION
etcd $ETCD_VERSION
kwok $KWOK_VERSION
helm $HELM_VERSION
go $GO_VERSION
built $BUILD_DATE in $((SECONDS - START))s
EOF
touch "$TMP/.complete"
# Move into place atomically (rename within one file system).
rm -rf "$DEST"
mv -T "$TMP" "$DEST"
trap - EXIT INT TERM HUP
# Keep the three most recent builds (other pinned versions, other checkouts).
find "$CACHE_ROOT" -mindepth 1 -maxdepth 1 -type d -name 'k8s-*' -printf '%T@ %p\n' |
  sort -rn | tail -n +4 | cut -d' ' -f2- | while read -r old; do
    log "removing old build $old"; rm -rf "$old"
  done
log "all binaries built in $((SECONDS - START))s"
echo "$BIN_DIR"
