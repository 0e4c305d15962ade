#!/usr/bin/env bash
# Fails when a Rust source file passes 800 lines (STYLE.md §7: a file that
# long holds two things and should be split).
set -euo pipefail
cd "$(dirname "$0")/../.."
bad=0
while IFS= read -r f; do
  n=$(wc -l <"$f")
  if [ "$n" -gt 800 ]; then echo "file too long ($n lines > 800): $f" >&2; bad=1; fi
done < <(git ls-files '*.rs')
exit $bad
