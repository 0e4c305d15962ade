#!/usr/bin/env bash
# The bucketfs benchmark, one command: bucketfs (`cove mount`) vs s3fs vs
# rclone mount (--vfs-cache-mode writes) vs the raw S3 client, all on one
# garage on loopback. Prints a markdown table (stdout); progress on stderr.
#
#   bench/bucketfs/run.sh                     # 1 GiB sequential file
#   BENCH_SIZE_MIB=128 bench/bucketfs/run.sh  # quick run
#   BENCH_SYSTEMS=raw,bucketfs bench/bucketfs/run.sh
#
# Needs root (FUSE mounts), Debian's s3fs, rclone and fuse3, and garage
# (built into the cache by scripts/lib/garage.sh when missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "run as root (FUSE mounts)" >&2; exit 1; }
for bin in s3fs rclone fusermount3; do
  command -v "$bin" >/dev/null || { echo "missing $bin (apt-get install s3fs rclone fuse3)" >&2; exit 1; }
done
bash scripts/lib/garage.sh
export COVE_GARAGE_BIN="${COVE_GARAGE_BIN:-${COVE_CACHE_DIR:-/var/cache/cove}/garage/bin/garage}"
cargo build --release -p cove
export COVE_BIN="${COVE_BIN:-$PWD/target/release/cove}"
cargo bench -p bucketfs --bench peers
