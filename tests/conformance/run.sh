#!/usr/bin/env bash
# Conformance of cove with the official SDKs, against a live `cove serve`.
#
# Builds cove, starts `cove serve` on a free loopback port with a temp state
# dir, creates two API keys (the second user proves isolation), runs the
# TypeScript SDK suite (node --test) and the Python SDK suite (pytest), and
# always destroys every sandbox it created and stops the server (trap), also
# when a suite fails or the script is interrupted.
#
# Needs: node 20 + npm, python3 (3.10+) with venv, cargo; plus what cove serve
# needs for real sandboxes (runc, the base image under $COVE_IMAGES_DIR).
# Env: COVE_IMAGES_DIR (passed through), COVE_TEST_SHAPE (optional shape id),
#      COVE_BIN (use this binary instead of building one).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"

log() { printf '[conformance] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v node >/dev/null || die "node is missing (Node 20 is needed for the TypeScript SDK)"
command -v npm >/dev/null || die "npm is missing"
command -v python3 >/dev/null || die "python3 is missing"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' \
  || die "node $(node --version) is too old; the SDK needs Node 20"

images="${COVE_IMAGES_DIR:-/var/cache/cove/images}"
[ -x "$images/devbox-1/rootfs/bin/bash" ] \
  || die "base image devbox:1 missing under $images: run scripts/lib/image.sh (env COVE_IMAGES_DIR points to it)"
command -v runc >/dev/null || die "runc is missing (apt-get install -y runc)"

# --- clients (pinned: package-lock.json, requirements.txt) -----------------
log "installing the TypeScript SDK (npm ci)"
(cd "$here/ts" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
  log "creating the Python venv in $venv"
  python3 -m venv "$venv" || die "python3 -m venv failed (apt-get install -y python3-venv)"
fi
log "installing the Python SDK (pip)"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/py/requirements.txt"

# --- the server -------------------------------------------------------------
if [ -n "${COVE_BIN:-}" ]; then
  cove="$COVE_BIN"
else
  log "building cove (cargo build -p cove -p cove-agent)"
  cargo build --quiet -p cove -p cove-agent
  cove="$repo/target/debug/cove"
fi
[ -x "$cove" ] || die "cove binary not found at $cove"

# Every `cove serve` on a host uses the same bridge and address range, so
# servers started by tests take turns (the same lock as crates/cove/tests).
exec 9>/tmp/cove-integration-tests.lock
flock 9
state="$(mktemp -d /tmp/cove-conformance.XXXXXX)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
server_pid=""
keys=()

# Destroys every sandbox of our users through the API (the server itself keeps
# sandboxes running across a stop, by design), then stops the server.
cleanup() {
  local rc=$?
  set +e
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    for key in "${keys[@]}"; do
      python3 "$here/reap.py" "$base" "$key"
    done
    kill -TERM "$server_pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
  fi
  # Closing test-garage's stdin stops garage (after the server flushed).
  if [ -n "${GARAGE_PID:-}" ]; then
    [ -n "${GARAGE[1]:-}" ] && eval "exec ${GARAGE[1]}>&-"
    wait "$GARAGE_PID" 2>/dev/null
  fi
  if [ "$rc" -ne 0 ] && [ -f "$state/serve.log" ]; then
    log "last lines of the server log:"
    tail -n 40 "$state/serve.log" >&2
  fi
  # Never rm -rf through a live mount (an overlay root still mounted would
  # be written through, not removed): keep the dir and say so instead.
  if grep -q " $state" /proc/self/mounts; then
    log "warning: mounts remain under $state; leaving it in place"
  else
    rm -rf "$state"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "starting cove serve on $base (state in $state)"
# --base-path: every route is also served under a prefix (API.md §1.1, §9.4);
# the suites check that the SDKs work through it.
prefix="/conformance-prefix"
"$cove" serve --state-dir "$state" --listen "127.0.0.1:$port" --base-path "$prefix" >"$state/serve.log" 2>&1 9>&- &
server_pid=$!

python3 - "$base" "$server_pid" <<'EOF' || die "cove serve did not answer /healthz within 60 s"
import os, sys, time, urllib.request
base, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit("cove serve exited")
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except Exception:
        pass
    time.sleep(0.1)
sys.exit(1)
EOF

key="$("$cove" keys create --state-dir "$state" | tail -n 1)"
key2="$("$cove" keys create --state-dir "$state" --user conformance-other | tail -n 1)"
[ -n "$key" ] && [ -n "$key2" ] || die "cove keys create printed no key"
[ "$key" != "$key2" ] || die "cove keys create printed the same key twice"
keys=("$key" "$key2")

export CREATEOS_SANDBOX_BASE_URL="$base"
export COVE_CONFORMANCE_SECOND_API_KEY="$key2"
export COVE_CONFORMANCE_BASE_PATH="$prefix"
# For the self API test, which finds a sandbox's init pid through runc.
export COVE_CONFORMANCE_STATE_DIR="$state"

# A real S3 server for the disk tests: garage on loopback, kept alive by
# test-garage until its stdin (our coproc pipe) closes.
garage_bin="${COVE_GARAGE_BIN:-${COVE_CACHE_DIR:-/var/cache/cove}/garage/bin/garage}"
[ -x "$garage_bin" ] || die "garage is missing at $garage_bin: run scripts/lib/garage.sh"
export COVE_GARAGE_BIN="$garage_bin"
cargo build --quiet -p cove-testkit --bin test-garage
coproc GARAGE { "$repo/target/debug/test-garage"; }
read -r s3 <&"${GARAGE[0]}" || die "test-garage did not start garage"
s3_field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$s3" "$1"; }
export COVE_CONFORMANCE_S3_ENDPOINT="$(s3_field endpoint)"
export COVE_CONFORMANCE_S3_REGION="$(s3_field region)"
export COVE_CONFORMANCE_S3_BUCKET="$(s3_field bucket)"
export COVE_CONFORMANCE_S3_ACCESS_KEY="$(s3_field access_key)"
export COVE_CONFORMANCE_S3_SECRET_KEY="$(s3_field secret_key)"

# --- the suites -------------------------------------------------------------
failed=0
log "TypeScript SDK suite"
(cd "$here/ts" && CREATEOS_SANDBOX_API_KEY="$key" npm test --silent) || failed=1
log "Python SDK suite"
(cd "$here/py" && CREATEOS_API_KEY="$key" "$venv/bin/python" -m pytest -q) || failed=1

if [ "$failed" -ne 0 ]; then
  log "conformance FAILED"
  exit 1
fi
log "conformance passed"
