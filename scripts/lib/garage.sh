#!/usr/bin/env bash
# Installs garage 2.5.0 (the S3 server the tests and the bucketfs benchmark
# run on loopback) into $COVE_CACHE_DIR/garage, unless the binary is already
# there. The build takes 10-20 minutes on 2 cores, so it is cached and skipped
# when present. Trimmed features (lmdb only, bundled C libraries) shorten it.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/common.sh

GARAGE_VERSION=2.5.0
GARAGE_ROOT="$COVE_CACHE_DIR/garage"
GARAGE_BIN="$GARAGE_ROOT/bin/garage"

if [ -x "$GARAGE_BIN" ] && "$GARAGE_BIN" --version 2>/dev/null | grep -q "v$GARAGE_VERSION"; then
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
