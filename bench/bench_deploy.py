"""From "create service" to the first answer, through the whole platform, against the floor.

    .venv/bin/python bench/bench_deploy.py [--runs N]

Starts a registry on loopback, pushes a busybox httpd image, and `shoal up` with its node
agent (needs root). Each run creates a service from the image (already pulled once, so
cached by digest) through the API and polls, every 5 ms, both the API (service HEALTHY) and
the instance's address (first HTTP 200); then deletes the service. The floor is the same
httpd started as a plain process on the host, polled the same way, in the same run.
Goal: create to HEALTHY under 1 s.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import delete_apps
from tests.conftest import Shoal, free_port, start_shoal
from tests.support.registry import (
    BuildConfig,
    ImageBuilder,
    busybox_rootfs,
    start_registry,
)

POLL_S = 0.005
HTTPD = ["/bin/busybox", "httpd", "-f", "-p", "8000", "-h", "/www"]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def first_200(url: str, deadline: float) -> float:
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return time.monotonic()
        except httpx.TransportError:
            pass
        time.sleep(POLL_S)
    raise TimeoutError(url)


def direct(rootfs: Path) -> float:
    """The floor: the same httpd as a plain host process, start to first 200."""
    port = free_port()
    t0 = time.monotonic()
    proc = subprocess.Popen(["chroot", str(rootfs), *HTTPD[:4], str(port), *HTTPD[5:]])
    try:
        return first_200(f"http://127.0.0.1:{port}/", t0 + 10) - t0
    finally:
        proc.kill()
        proc.wait()


def address_of(shoal: Shoal, service_id: str) -> str | None:
    with sqlite3.connect(shoal.data_dir / "shoal.db") as db:
        row = db.execute(
            "select address from instances where service_id = ? and address is not null",
            (service_id,),
        ).fetchone()
    return row[0] if row else None


def one_deploy(
    shoal: Shoal, api: httpx.Client, app_id: str, image: str, n: int
) -> tuple[float, float]:
    """(create to HEALTHY, create to first 200 from the instance), in seconds."""
    definition = {
        "name": f"web-{n}",
        "docker": {"image": image},
        "ports": [{"port": 8000, "protocol": "http"}],
        "regions": ["fra"],
    }
    t0 = time.monotonic()
    svc = api.post("/v1/services", json={"app_id": app_id, "definition": definition}).json()
    service_id = svc["service"]["id"]
    deadline = t0 + 30
    healthy = answered = None
    while (healthy is None or answered is None) and time.monotonic() < deadline:
        if (
            healthy is None
            and api.get(f"/v1/services/{service_id}").json()["service"]["status"] == "HEALTHY"
        ):
            healthy = time.monotonic()
        if answered is None and (address := address_of(shoal, service_id)):
            try:
                if httpx.get(f"http://{address}:8000/", timeout=1).status_code == 200:
                    answered = time.monotonic()
            except httpx.TransportError:
                pass
        time.sleep(POLL_S)
    api.delete(f"/v1/services/{service_id}")
    if healthy is None or answered is None:
        raise TimeoutError(f"run {n} did not become healthy")
    return healthy - t0, answered - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="shoal-bench-deploy-"))
    registry = start_registry(root / "registry")
    builder = ImageBuilder(root / "buildah")
    shoal = None
    try:
        files = busybox_rootfs(root / "image")
        (files / "www").mkdir()
        (files / "www" / "index.html").write_text("hello")
        image = builder.push(files, registry, "hello", config=BuildConfig(entrypoint=HTTPD))
        shoal = start_shoal(root / "data", agents=True)
        with shoal.client() as api:
            app_id = api.post("/v1/apps", json={"name": "bench"}).json()["app"]["id"]
            one_deploy(shoal, api, app_id, image, 0)  # pulls the image once
            healthy, answered, floor = [], [], []
            for n in range(1, args.runs + 1):
                h, a = one_deploy(shoal, api, app_id, image, n)
                healthy.append(h)
                answered.append(a)
                floor.append(direct(files))
            delete_apps(api, app_id)
    finally:
        if shoal is not None:
            shoal.stop()
        builder.close()
        registry.stop()
        shutil.rmtree(root, ignore_errors=True)

    print(f"{args.runs} deployments of a cached image, busybox httpd (ms)")
    print(f"{'':36}{'p50':>9}{'p99':>9}{'mean':>9}")
    rows = [
        ("direct start to first 200 (floor)", floor),
        ("create to first 200 from the instance", answered),
        ("create to service HEALTHY (API)", healthy),
    ]
    for label, values in rows:
        ms = [v * 1000 for v in values]
        print(f"{label:36}{pct(ms, 50):9.1f}{pct(ms, 99):9.1f}{statistics.mean(ms):9.1f}")
    ratio = pct(healthy, 50) / pct(floor, 50)
    print(
        f"platform overhead, create to HEALTHY: {1000 * (pct(healthy, 50) - pct(floor, 50)):.1f} ms"
        f" at p50 ({ratio:.1f}x the floor)"
    )
    met = pct(healthy, 99) < 1.0
    print(
        f"Goal: create to HEALTHY under 1 s: {'MET' if met else 'NOT MET'} "
        f"(p99 {1000 * pct(healthy, 99):.0f} ms)"
    )


if __name__ == "__main__":
    main()
