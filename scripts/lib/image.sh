#!/usr/bin/env bash
# scripts/lib/image.sh: builds the base image `devbox:1` (Debian 12 minbase
# plus the tools the SDK helpers rely on: bash with /dev/tcp, GNU timeout,
# python3, curl, git, procps, iproute2) with mmdebstrap, cached under
# $COVE_CACHE_DIR/images/devbox-1/ with a stamp, so a second run skips it.
#
# Layout (read by cove-runtime, see crates/cove-runtime/src/runc/image.rs):
#   <images>/devbox-1/rootfs/   the root filesystem (host uids, unshifted)
#   <images>/devbox-1/stamp     written last; its content names the recipe
#
# Prints the images directory on stdout (the last line), logs on stderr.
# Needs root, mmdebstrap and network access to the Debian archive.
set -euo pipefail

CACHE="${COVE_CACHE_DIR:-/var/cache/cove}"
IMAGES="${COVE_IMAGES_DIR:-$CACHE/images}"
NAME=devbox-1
# Bump RECIPE when the package list or the post-steps change: a stamp with a
# different recipe makes the next run rebuild.
PACKAGES="bash,coreutils,python3,curl,ca-certificates,git,procps,iproute2,less,netbase"
RECIPE="v1 bookworm minbase $PACKAGES"
DIR="$IMAGES/$NAME"

if [ -f "$DIR/stamp" ] && [ "$(cat "$DIR/stamp")" = "$RECIPE" ] && [ -x "$DIR/rootfs/bin/bash" ]; then
  echo "image $NAME is cached in $DIR" >&2
  echo "$IMAGES"
  exit 0
fi

[ "$(id -u)" = 0 ] || { echo "error: building the base image needs root" >&2; exit 1; }
command -v mmdebstrap >/dev/null || { echo "error: mmdebstrap is missing (apt-get install mmdebstrap)" >&2; exit 1; }

mkdir -p "$IMAGES"
TMP="$(mktemp -d "$IMAGES/.build-$NAME.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

echo "building image $NAME with mmdebstrap (about a minute)" >&2
mmdebstrap --variant=minbase --include="$PACKAGES" \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  bookworm "$TMP/rootfs" http://deb.debian.org/debian >&2

# Mount points cove binds into every sandbox: the agent binary and its socket
# directory. Present in the image so runc never has to create them.
mkdir -p "$TMP/rootfs/.cove/run"
: > "$TMP/rootfs/.cove/agent"
# A hostname and hosts file the runtime's bind mounts replace; resolv.conf is
# bound per sandbox too.
: > "$TMP/rootfs/etc/resolv.conf"
rm -rf "$TMP/rootfs/var/cache/apt/archives/"*.deb "$TMP/rootfs/var/lib/apt/lists/"* || true

# Sanity: the tools the SDK helpers need must be there.
for tool in bash timeout python3 curl git ps ip; do
  chroot "$TMP/rootfs" /usr/bin/env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    sh -c "command -v $tool >/dev/null" || { echo "error: $tool missing from the image" >&2; exit 1; }
done

rm -rf "$DIR"
mkdir -p "$DIR"
mv "$TMP/rootfs" "$DIR/rootfs"
echo "$RECIPE" > "$DIR/stamp"
echo "image $NAME built in $DIR" >&2
echo "$IMAGES"
