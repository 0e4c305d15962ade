#!/usr/bin/env bash
# End-to-end sandbox benchmark: builds cove (release), starts `cove serve` on a
# free loopback port with a temp state dir, creates a key, runs bench.py (API
# creates next to a plain `runc run` floor, exec round trips, file MiB/s), and
# always destroys its sandboxes and stops the server.
#
# Needs root, runc, python3, cargo and the devbox:1 image under
# $COVE_IMAGES_DIR (default /var/cache/cove/images; scripts/lib/image.sh).
# Env: COVE_BIN (skip the build), BENCH_CREATES, BENCH_EXECS, BENCH_FILE_MIB,
# BENCH_SERVE_LOG (copy the server's log there; with RUST_LOG=cove_runtime=debug
# it has each create's phases).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"
log() { printf '[bench] %s\n' "$*" >&2; }

images="${COVE_IMAGES_DIR:-/var/cache/cove/images}"
rootfs="$images/devbox-1/rootfs"
[ -x "$rootfs/bin/bash" ] || { log "error: devbox:1 missing at $rootfs (run scripts/lib/image.sh; env COVE_IMAGES_DIR)"; exit 1; }
command -v runc >/dev/null || { log "error: runc missing (apt-get install -y runc)"; exit 1; }

if [ -n "${COVE_BIN:-}" ]; then
  cove="$COVE_BIN"
else
  log "building cove (release)"
  cargo build --quiet --release -p cove -p cove-agent
  cove="$repo/target/release/cove"
fi

# Every `cove serve` on a host uses the same bridge and address range, so
# servers started by tests take turns (the same lock as crates/cove/tests).
exec 9>/tmp/cove-integration-tests.lock
flock 9
state="$(mktemp -d /tmp/cove-bench.XXXXXX)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
server_pid=""
key=""
cleanup() {
  local rc=$?
  set +e
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    [ -n "$key" ] && python3 "$repo/tests/conformance/reap.py" "$base" "$key"
    kill -TERM "$server_pid"; sleep 1; kill -KILL "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null
  fi
  [ "$rc" -ne 0 ] && tail -n 30 "$state/serve.log" >&2
  [ -n "${BENCH_SERVE_LOG:-}" ] && cp "$state/serve.log" "$BENCH_SERVE_LOG"
  grep -q " $state" /proc/self/mounts && log "warning: mounts remain under $state" || rm -rf "$state"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

RUST_LOG="${RUST_LOG:-warn}" "$cove" serve --state-dir "$state" --listen "127.0.0.1:$port" >"$state/serve.log" 2>&1 9>&- &
server_pid=$!
for _ in $(seq 600); do
  python3 -c "import urllib.request,sys; urllib.request.urlopen('$base/healthz', timeout=1)" 2>/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || { log "cove serve exited"; exit 1; }
  sleep 0.1
done
key="$("$cove" keys create --state-dir "$state" | tail -n 1)"
python3 "$here/bench.py" "$base" "$key" "$rootfs"
