# shellcheck shell=bash
# Sourced by the build scripts (control plane, TimescaleDB): one build at a time per cache, and a
# fresh build directory that a killed build never leaves half-made.
#
# begin_build CACHE_ROOT RESULT MODE — needs the caller's `log` and `complete`. Waits for any
# other build of this cache; if that one made the cache (and MODE is build), prints RESULT and
# exits 0. Otherwise
# sets TMP to an empty build directory inside CACHE_ROOT, removed on exit; a build step that
# runs a long child sets CHILD to its pid so that Ctrl-C or a kill stops it too.

begin_build() {
  local root="$1" result="$2" mode="$3"
  mkdir -p "$root"
  # Two pytest sessions, or `make run` and `make test`, may start together.
  exec 9>"$root/.lock"
  if ! flock -n 9; then
    log "another build holds $root/.lock; waiting for it"
    flock 9
  fi
  if [[ "$mode" == build ]] && complete; then
    log "cached by a concurrent build"
    echo "$result"
    exit 0
  fi
  # We hold the lock, so any other build directory is left over from a killed build.
  rm -rf "$root"/.build-*
  TMP="$(mktemp -d "$root/.build-XXXXXX")"
  CHILD=
  trap 'rm -rf "$TMP"' EXIT
  trap 'log "interrupted"; [[ -n "$CHILD" ]] && kill -TERM "$CHILD" 2>/dev/null; wait; exit 130' INT TERM HUP
  chmod 755 "$TMP"
}
