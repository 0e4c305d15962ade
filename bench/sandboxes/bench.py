"""End-to-end sandbox benchmark through cove's HTTP API, with a plain
`runc run` of the same rootfs as the floor, measured in the same run.

Prints: create->running p50/p99 over N creates (API) next to the runc floor,
exec `true` round trip p50/p99, and file upload/download MiB/s for a 256 MiB
file. Not a test: it prints figures and the issue's goals beside them.

Usage (run.sh sets these up): bench.py BASE_URL API_KEY ROOTFS
Env: BENCH_CREATES (50), BENCH_EXECS (300), BENCH_FILE_MIB (256).
Loopback only; stdlib only.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(p / 100 * (len(s) - 1))))
    return s[k]


class Api:
    def __init__(self, base: str, key: str) -> None:
        u = urllib.parse.urlsplit(base)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=300)
        self.key = key

    def call(self, method: str, path: str, body=None, raw: bytes | None = None):
        headers = {"X-Api-Key": self.key}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        elif raw is not None:
            data = raw
            headers["Content-Type"] = "application/octet-stream"
        self.conn.request(method, path, body=data, headers=headers)
        resp = self.conn.getresponse()
        payload = resp.read()
        if resp.status >= 300:
            raise RuntimeError(f"{method} {path}: {resp.status} {payload[:300]!r}")
        return resp.status, payload

    def json(self, method: str, path: str, body=None):
        _, payload = self.call(method, path, body)
        return json.loads(payload)["data"]

    def destroy(self, sb_id: str) -> None:
        self.json("DELETE", f"/v1/sandboxes/{sb_id}")
        deadline = time.monotonic() + 60
        while self.json("GET", f"/v1/sandboxes/{sb_id}")["status"] != "destroyed":
            if time.monotonic() > deadline:
                raise RuntimeError(f"{sb_id} not destroyed in 60 s")
            time.sleep(0.05)


def runc_floor_once(bundle_src: str, work: str, i: int) -> float:
    """create+start of a plain container until its process prints `ready`."""
    cid = f"cove-bench-floor-{os.getpid()}-{i}"
    root = os.path.join(work, "runc-state")
    t0 = time.perf_counter()
    p = subprocess.Popen(
        ["runc", "--root", root, "run", "-d", "--bundle", bundle_src, cid],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    line = p.stdout.readline()
    elapsed = (time.perf_counter() - t0) * 1000
    p.wait()
    if line.strip() != b"ready":
        raise RuntimeError(f"runc floor: got {line!r}: {p.stderr.read()[:300]!r}")
    p.stdout.close()
    p.stderr.close()
    subprocess.run(["runc", "--root", root, "delete", "-f", cid], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return elapsed


def make_floor_bundle(rootfs: str, work: str) -> str:
    bundle = os.path.join(work, "bundle")
    os.makedirs(bundle)
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["/bin/sh", "-c", "echo ready; exec sleep 600"]
    cfg["root"] = {"path": rootfs, "readonly": True}
    cfg["hostname"] = "floor"
    with open(path, "w") as f:
        json.dump(cfg, f)
    return bundle


def bench_creates(api: Api, shape: str, rootfs_name: str, bundle: str, work: str, n: int):
    api_ms, spawn_ms, floor_ms = [], [], []
    # Warm-up (page cache, first-use paths) for both, not counted.
    runc_floor_once(bundle, work, -1)
    sb = api.json("POST", "/v1/sandboxes", {"shape": shape, "rootfs": rootfs_name})
    api.destroy(sb["id"])
    for i in range(n):
        # Interleaved so that noise from other load hits both alike.
        floor_ms.append(runc_floor_once(bundle, work, i))
        t0 = time.perf_counter()
        sb = api.json("POST", "/v1/sandboxes", {"shape": shape, "rootfs": rootfs_name})
        api_ms.append((time.perf_counter() - t0) * 1000)
        assert sb["status"] == "running", sb
        spawn_ms.append(float(sb.get("spawn_ms", 0)))
        api.destroy(sb["id"])
    return api_ms, spawn_ms, floor_ms


def bench_exec(api: Api, sb_id: str, n: int) -> list[float]:
    body = {"cmd": "true", "args": []}
    path = f"/v1/sandboxes/{sb_id}/exec"
    for _ in range(20):
        api.json("POST", path, body)
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        res = api.json("POST", path, body)
        out.append((time.perf_counter() - t0) * 1000)
        assert res["result"]["exit_code"] == 0, res
    return out


def bench_files(api: Api, sb_id: str, mib: int, reps: int = 3):
    data = os.urandom(mib << 20)
    q = urllib.parse.urlencode({"path": "/root/bench.bin"})
    path = f"/v1/sandboxes/{sb_id}/files?{q}"
    up, down = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        api.call("PUT", path, raw=data)
        up.append(mib / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        _, got = api.call("GET", path)
        down.append(mib / (time.perf_counter() - t0))
        if got != data:
            raise RuntimeError("downloaded bytes differ from the upload")
    return up, down


def main() -> int:
    base, key, rootfs = sys.argv[1], sys.argv[2], sys.argv[3]
    n_create = int(os.environ.get("BENCH_CREATES", "50"))
    n_exec = int(os.environ.get("BENCH_EXECS", "300"))
    file_mib = int(os.environ.get("BENCH_FILE_MIB", "256"))
    api = Api(base, key)
    shapes = api.json("GET", "/v1/shapes")["data"]
    shape = min(shapes, key=lambda s: s["mem_mib"])["id"]
    work = tempfile.mkdtemp(prefix="cove-bench-")
    try:
        bundle = make_floor_bundle(rootfs, work)
        api_ms, spawn_ms, floor_ms = bench_creates(api, shape, "devbox:1", bundle, work, n_create)
        sb = api.json("POST", "/v1/sandboxes", {"shape": shape, "rootfs": "devbox:1"})
        try:
            exec_ms = bench_exec(api, sb["id"], n_exec)
            up, down = bench_files(api, sb["id"], file_mib)
        finally:
            api.destroy(sb["id"])
    finally:
        shutil.rmtree(work, ignore_errors=True)

    f50, a50 = pct(floor_ms, 50), pct(api_ms, 50)
    e50 = pct(exec_ms, 50)
    up_m, down_m = statistics.median(up), statistics.median(down)
    print(f"\ncove sandbox benchmark ({n_create} creates, shape {shape}, devbox:1; "
          f"{os.cpu_count()} cpus)")
    print(f"{'measure':<46}{'p50':>10}{'p99':>10}   goal")
    print(f"{'runc run (floor), create->ready ms':<46}{f50:>10.1f}{pct(floor_ms, 99):>10.1f}")
    print(f"{'cove API create->running ms':<46}{a50:>10.1f}{pct(api_ms, 99):>10.1f}"
          f"   <= 1.5x floor ({1.5 * f50:.0f}) and <= 150: "
          f"{'met' if a50 <= 1.5 * f50 and a50 <= 150 else 'MISSED'} ({a50 / f50:.2f}x floor)")
    print(f"{'  of which spawn_ms (server-side)':<46}{pct(spawn_ms, 50):>10.1f}{pct(spawn_ms, 99):>10.1f}")
    print(f"{'exec `true` round trip ms':<46}{e50:>10.2f}{pct(exec_ms, 99):>10.2f}"
          f"   <= 10: {'met' if e50 <= 10 else 'MISSED'}")
    print(f"{f'file upload {file_mib} MiB, MiB/s (median of 3)':<46}{up_m:>10.0f}{'':>10}"
          f"   >= 200: {'met' if up_m >= 200 else 'MISSED'}")
    print(f"{f'file download {file_mib} MiB, MiB/s (median of 3)':<46}{down_m:>10.0f}{'':>10}"
          f"   >= 200: {'met' if down_m >= 200 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
