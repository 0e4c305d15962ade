#!/usr/bin/env bash
# Installs garage 2.5.0 (the S3 server the tests and the bucketfs benchmark
# run on loopback) into $COVE_CACHE_DIR/garage, and moto into
# $COVE_CACHE_DIR/moto, unless they are already there. The build takes 10-20 minutes on 2 cores, so it is cached and skipped
# when present. Trimmed features (lmdb only, bundled C libraries) shorten it.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/common.sh

GARAGE_VERSION=2.5.0
GARAGE_ROOT="$COVE_CACHE_DIR/garage"
GARAGE_BIN="$GARAGE_ROOT/bin/garage"

# moto (PyPI), the second S3 test server: garage refuses anonymous requests,
# so the public-bucket (unsigned) mount test runs on moto. ~1 minute, cached.
MOTO_VENV="$COVE_CACHE_DIR/moto"
if [ ! -x "$MOTO_VENV/bin/moto_server" ]; then
  log "installing moto[server] into $MOTO_VENV"
  python3 -m venv "$MOTO_VENV"
  "$MOTO_VENV/bin/pip" install -q 'moto[server]==5.1.*' >&2
fi

if [ -x "$GARAGE_BIN" ] && "$GARAGE_BIN" --version 2>/dev/null | grep -qF "$GARAGE_VERSION"; then
  log "garage $GARAGE_VERSION present at $GARAGE_BIN"
  exit 0
fi

ensure_rust
mkdir -p "$GARAGE_ROOT"
log "building garage $GARAGE_VERSION into $GARAGE_ROOT (10-20 minutes, cached afterwards)"
cargo install "garage@$GARAGE_VERSION" --locked --root "$GARAGE_ROOT" \
  --no-default-features --features lmdb,bundled-libs >&2
[ -x "$GARAGE_BIN" ] || die "garage build finished but $GARAGE_BIN is missing"
log "garage installed at $GARAGE_BIN"
