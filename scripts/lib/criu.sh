#!/usr/bin/env bash
# Builds CRIU 4.x into $COVE_CACHE_DIR/criu/bin/criu unless it is already there.
# Debian 12's CRIU 3.17 fails on kernels >= 6.13 ("vdso: Unexpected rt vDSO
# area bounds"); 4.1 fixed it. We take the upstream .orig tarball of a newer
# Debian suite's source package (sid, else trixie) through a private apt
# configuration, so the machine's own sources.list is never changed, and apt
# checks the tarball against the suite's signed Sources index.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/common.sh

CRIU_ROOT="$COVE_CACHE_DIR/criu"
CRIU_BIN="$CRIU_ROOT/bin/criu"
if [ -x "$CRIU_BIN" ] && "$CRIU_BIN" --version 2>/dev/null | grep -q 'Version: 4\.'; then
  log "criu present at $CRIU_BIN"
  exit 0
fi

apt_install libbsd-dev libcap-dev libgnutls28-dev libnet1-dev libnftables-dev libnl-3-dev \
  libprotobuf-c-dev libprotobuf-dev protobuf-c-compiler protobuf-compiler pkgconf uuid-dev \
  python3-protobuf gcc make libaio-dev xz-utils

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
tarball=""
for suite in sid trixie; do
  echo "deb-src http://deb.debian.org/debian $suite main" >"$work/sources.list"
  apt_opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
    -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache")
  apt-get "${apt_opts[@]}" update -q >&2 || continue
  # The .dsc and debian.tar may be missing on the mirror; only the .orig matters.
  (cd "$work" && apt-get "${apt_opts[@]}" source --download-only criu >&2) || true
  tarball="$(ls "$work"/criu_4.*.orig.tar.* 2>/dev/null | sort -V | tail -n 1 || true)"
  [ -n "$tarball" ] && break
done
[ -n "$tarball" ] || die "could not fetch a CRIU 4.x source tarball from Debian"

log "building CRIU from $(basename "$tarball") (about one minute)"
tar -C "$work" -xf "$tarball"
src="$(find "$work" -maxdepth 1 -type d -name 'criu-4*' | head -n 1)"
make -C "$src" -j"$(nproc)" criu >&2
mkdir -p "$CRIU_ROOT/bin"
install -m 0755 "$src/criu/criu" "$CRIU_BIN"
"$CRIU_BIN" --version >&2
log "criu installed at $CRIU_BIN"
