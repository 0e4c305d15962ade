"""Destroy every sandbox a key owns that is not destroyed yet (run.sh's trap).

Usage: reap.py BASE_URL API_KEY. Talks to loopback only; stdlib only, so it
works before the venv exists. Waits up to 60 s for the destroys to finish.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request

TERMINAL = {"destroyed", "failed"}


def call(base: str, key: str, method: str, path: str):
    req = urllib.request.Request(base + path, method=method, headers={"X-Api-Key": key})
    with urllib.request.urlopen(req, timeout=60) as resp:
        body = resp.read()
    return json.loads(body) if body else None


def live(base: str, key: str) -> list[str]:
    ids, offset = [], 0
    while True:
        page = call(base, key, "GET", f"/v1/sandboxes?limit=500&offset={offset}")["data"]
        items = page["data"]
        ids += [s["id"] for s in items if s.get("status") not in TERMINAL]
        offset += len(items)
        if not items or offset >= page["pagination"]["total"]:
            return ids


def main() -> int:
    base, key = sys.argv[1], sys.argv[2]
    try:
        ids = live(base, key)
        for sb in ids:
            try:
                call(base, key, "DELETE", f"/v1/sandboxes/{sb}")
            except urllib.error.URLError as err:
                print(f"[conformance] reap: DELETE {sb}: {err}", file=sys.stderr)
        deadline = time.monotonic() + 60
        while ids and time.monotonic() < deadline:
            time.sleep(0.5)
            ids = live(base, key)
        if ids:
            print(f"[conformance] reap: still not destroyed: {ids}", file=sys.stderr)
            return 1
    except (urllib.error.URLError, KeyError, ValueError) as err:
        print(f"[conformance] reap failed: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
