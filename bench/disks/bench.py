"""Live disk attach benchmark through cove's HTTP API, on a real S3 server
(garage on loopback). Prints p50/p99 of: the attach call (it returns when
the mount is usable inside the sandbox), the first read through the new
mount, and detach (flush, unmount). Beside them, measured in the same run:
one exec round trip (the floor of any call that acts inside a sandbox) and
one S3 LIST of the bucket (what mounting must ask the server once).

Usage (run.sh sets these up): bench.py BASE_URL API_KEY S3_JSON
Env: BENCH_ATTACHES (30). Loopback only; stdlib only.
"""

from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sandboxes"))
from bench import Api, pct  # noqa: E402


def ms(f) -> tuple[float, object]:
    t = time.perf_counter()
    out = f()
    return (time.perf_counter() - t) * 1000, out


def main() -> None:
    base, key, s3 = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    n = int(os.environ.get("BENCH_ATTACHES", "30"))
    api = Api(base, key)
    disk = api.json("POST", "/v1/disks", {
        "name": "bench", "kind": "s3",
        "config": {"bucket": s3["bucket"], "endpoint": s3["endpoint"], "region": s3["region"], "use_path_style": True},
        "credentials": {"access_key": s3["access_key"], "secret_key": s3["secret_key"]},
    })
    shape = min(api.json("GET", "/v1/shapes")["data"], key=lambda s: s["mem_mib"])["id"]
    sb = api.json("POST", "/v1/sandboxes", {"shape": shape})["id"]
    try:
        api.json("POST", f"/v1/sandboxes/{sb}/exec", {"cmd": "bash", "args": ["-c", "echo hi > /root/x"]})
        attach, first_read, detach, exec_rt = [], [], [], []
        for i in range(n):
            path = f"/mnt/bench{i % 4}"
            t, _ = ms(lambda: api.json("POST", f"/v1/sandboxes/{sb}/disks", {"disk_id": disk["id"], "mount_path": path}))
            attach.append(t)
            t, out = ms(lambda: api.json("POST", f"/v1/sandboxes/{sb}/exec", {"cmd": "ls", "args": [path]}))
            if out["result"]["exit_code"] != 0:
                raise RuntimeError(f"mount not usable: {out}")
            first_read.append(t)
            t, _ = ms(lambda: api.json("POST", f"/v1/sandboxes/{sb}/exec", {"cmd": "true"}))
            exec_rt.append(t)
            t, _ = ms(lambda: api.json("DELETE", f"/v1/sandboxes/{sb}/disks/{disk['id']}?mount_path={path}"))
            detach.append(t)
        list_rt = []
        for _ in range(n):
            t, _ = ms(lambda: api.json("POST", "/v1/disks", {
                "name": "bench", "kind": "s3",
                "config": {"bucket": s3["bucket"], "endpoint": s3["endpoint"], "region": s3["region"], "use_path_style": True},
                "credentials": {"access_key": s3["access_key"], "secret_key": s3["secret_key"]},
            }))
            list_rt.append(t)
    finally:
        api.destroy(sb)
        api.json("DELETE", "/v1/disks/bench")

    def row(name: str, v: list[float]) -> str:
        return f"| {name} | {pct(v, 50):.1f} | {pct(v, 99):.1f} |"

    print(f"# live disk attach, {n} rounds (garage on loopback)\n")
    print("| measure | p50 ms | p99 ms |")
    print("|---|---|---|")
    print(row("attach call → usable mount", attach))
    print(row("first `ls` through the new mount (exec)", first_read))
    print(row("detach (flush + unmount)", detach))
    print(row("floor: exec `true` round trip", exec_rt))
    print(row("floor: an API call answered from the store (repeat disk create)", list_rt))
    p50 = pct(attach, 50)
    print(f"\nattach p50 {p50:.1f} ms: goal ≤ 100 ms {'met' if p50 <= 100 else 'NOT met'};"
          f" {1000 / p50:.0f}× inside CreateOS's ~1 s promise")


if __name__ == "__main__":
    main()
