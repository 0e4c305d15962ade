# Shared helpers for scripts/run and scripts/test. Sourced, not executed.
# Everything here is idempotent: a second run skips what is already done.

COVE_CACHE_DIR="${COVE_CACHE_DIR:-/var/cache/cove}"
export COVE_CACHE_DIR

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

require_root() {
  [ "$(id -u)" = 0 ] || die "run this as root (it installs packages and runs sandboxes)"
}

# apt_install PKG...: installs the Debian packages that are missing, running
# `apt-get update` once first (a fresh machine's package lists may be empty).
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  if [ -z "${COVE_APT_UPDATED:-}" ]; then
    apt-get update -q >&2
    COVE_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
}

# The packages cove needs at run time (sandboxes, FUSE, networking, images).
RUN_PACKAGES=(ca-certificates curl runc fuse3 libfuse3-dev pkg-config mmdebstrap
  nftables iproute2 uidmap e2fsprogs jq gcc libc6-dev make libseccomp-dev)

# ensure_rust: cargo must exist; install rustup's stable toolchain if not.
ensure_rust() {
  if [ -x "$HOME/.cargo/bin/cargo" ]; then export PATH="$HOME/.cargo/bin:$PATH"; fi
  command -v cargo >/dev/null && return 0
  log "installing the Rust toolchain (rustup)"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal \
    --component clippy,rustfmt >&2 || die "could not install Rust; install Rust >= 1.85 and re-run"
  export PATH="$HOME/.cargo/bin:$PATH"
}

# pick_port: a free TCP port on 127.0.0.1.
pick_port() {
  python3 - <<'PY'
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
}
