#!/usr/bin/env bash
# Live disk attach benchmark: builds cove (release) and test-garage, starts a
# garage on loopback and `cove serve` on a temp state dir, runs bench.py,
# and always destroys its sandbox, stops the server and garage.
#
# Needs root, runc, python3, cargo, the devbox:1 image and garage (built
# into the cache by scripts/lib/garage.sh). Env: COVE_BIN, BENCH_ATTACHES.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"
log() { printf '[bench] %s\n' "$*" >&2; }

bash scripts/lib/garage.sh >&2
export COVE_GARAGE_BIN="${COVE_GARAGE_BIN:-${COVE_CACHE_DIR:-/var/cache/cove}/garage/bin/garage}"
if [ -n "${COVE_BIN:-}" ]; then
  cove="$COVE_BIN"
else
  log "building cove (release)"
  cargo build --quiet --release -p cove -p cove-agent
  cove="$repo/target/release/cove"
fi
cargo build --quiet -p cove-testkit --bin test-garage

exec 9>/tmp/cove-integration-tests.lock
flock 9
state="$(mktemp -d /tmp/cove-bench-disks.XXXXXX)"
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
  if [ -n "${GARAGE_PID:-}" ]; then
    [ -n "${GARAGE[1]:-}" ] && eval "exec ${GARAGE[1]}>&-"
    wait "$GARAGE_PID" 2>/dev/null
  fi
  [ "$rc" -ne 0 ] && tail -n 30 "$state/serve.log" >&2
  grep -q " $state" /proc/self/mounts && log "warning: mounts remain under $state" || rm -rf "$state"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

coproc GARAGE { "$repo/target/debug/test-garage"; }
read -r s3 <&"${GARAGE[0]}" || { log "test-garage did not start garage"; exit 1; }

RUST_LOG="${RUST_LOG:-warn}" "$cove" serve --state-dir "$state" --listen "127.0.0.1:$port" >"$state/serve.log" 2>&1 9>&- &
server_pid=$!
for _ in $(seq 600); do
  python3 -c "import urllib.request,sys; urllib.request.urlopen('$base/healthz', timeout=1)" 2>/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || { log "cove serve exited"; exit 1; }
  sleep 0.1
done
key="$("$cove" keys create --state-dir "$state" | tail -n 1)"
python3 "$here/bench.py" "$base" "$key" "$s3"
