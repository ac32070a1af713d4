"""Waking a sleeping service, against the floor: the same app started directly.

    .venv/bin/python bench/bench_wake.py [--runs N]

Starts `shoal up --local-git` with its node agent and edge (needs root) and deploys a
reference Python web app (the standard library's http.server, from a local git repository,
run on the node's stack) with `min: 0` and a 1 s idle delay. Each run waits until the
service sleeps (its deployment SLEEPING, no instance left), then times one GET through the
edge: held by the edge's activator while the service wakes, answered by the new instance
(deep sleep: the instance starts again). The floor: the same app started as a plain host
process, timed from its start to its first answer, polled every 1 ms, in the same run.
Prints p50 and p99 of each over the runs. Goals (issue 6): deep wake p99 within 30 ms of
the direct start; light wake (not built yet: every sleep is deep) p99 under 10 ms.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.bench_deploy import pct
from bench.common import delete_app
from tests.conftest import free_port, start_shoal

APP = """\
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"awake"
        self.send_response(200); self.send_header("Content-Length", str(len(body)))
        self.end_headers(); self.wfile.write(body)
    def log_message(self, *args): pass
http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), H).serve_forever()
"""
POLL_S = 0.001


def repo(root: Path) -> Path:
    path = root / "app"
    path.mkdir()
    (path / "app.py").write_text(APP)
    (path / "index.html").write_text("a static site: no install step\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.test",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.test",
           "GIT_CONFIG_GLOBAL": "/dev/null"}  # fmt: skip
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "app"]):
        subprocess.run(["git", *args], cwd=path, env=env, check=True)
    return path


def direct(app: Path) -> float:
    """The floor: the app as a plain host process, start to first answer."""
    port = free_port()
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, str(app / "app.py")], env={"PORT": str(port)})
    try:
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                    return time.monotonic() - t0
            except httpx.TransportError:
                time.sleep(POLL_S)
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    runs = parser.parse_args().runs
    root = Path(tempfile.mkdtemp(prefix="shoal-bench-wake-"))
    shoal = None
    try:
        source = repo(root)
        shoal = start_shoal(root / "data", None, "--local-git", agents=True)
        api = shoal.client()
        app_id = api.post("/v1/apps", json={"name": "wake"}).json()["app"]["id"]
        definition = {
            "name": "web",
            "git": {"repository": str(source), "branch": "main", "run_command": "python3 app.py"},
            "ports": [{"port": 8000, "protocol": "http"}],
            "routes": [{"path": "/", "port": 8000}],
            "regions": ["fra"],
            "scalings": [
                {"min": 0, "max": 1, "targets": [{"sleep_idle_delay": {"deep_sleep_value": 1}}]}
            ],
        }
        svc = api.post("/v1/services", json={"app_id": app_id, "definition": definition}).json()
        dep = f"/v1/deployments/{svc['service']['latest_deployment_id']}"
        host = api.get(f"/v1/apps/{app_id}").json()["app"]["domains"][0]["name"]

        def asleep() -> bool:
            if api.get(dep).json()["deployment"]["status"] != "SLEEPING":
                return False
            listed = api.get("/v1/instances", params={"service_id": svc["service"]["id"]})
            return all(i["status"] in ("STOPPED", "ERROR") for i in listed.json()["instances"])

        wakes, floor = [], []
        for n in range(runs + 1):
            deadline = time.monotonic() + 300
            while not asleep():
                if time.monotonic() > deadline:
                    raise TimeoutError("the service did not go to sleep")
                time.sleep(0.1)
            t0 = time.monotonic()
            r = httpx.get(shoal.edge + "/", headers={"Host": host}, timeout=60)
            took = time.monotonic() - t0
            if r.status_code != 200:
                raise RuntimeError(f"wake {n}: {r.status_code} {r.text[:200]}")
            if n:  # the first also builds the app
                wakes.append(took)
                floor.append(direct(source))
            print(f"  wake {n}: {took * 1000:.0f} ms", flush=True)
        delete_app(api, app_id)
    finally:
        if shoal is not None:
            shoal.stop()
        shutil.rmtree(root, ignore_errors=True)
    ms = [w * 1000 for w in wakes]
    base = [f * 1000 for f in floor]
    print(f"\n{runs} wakes of a deep-sleeping Python app through the edge, 2 CPUs")
    print(f"  deep wake (first answer): p50 {pct(ms, 50):.0f} ms, p99 {pct(ms, 99):.0f} ms")
    print(f"  direct start (floor):     p50 {pct(base, 50):.0f} ms, p99 {pct(base, 99):.0f} ms")
    gap = pct(ms, 99) - pct(base, 99)
    verdict = "met" if gap <= 30 else "NOT MET"
    print(f"Goal: deep wake p99 within 30 ms of the direct start: {verdict} (+{gap:.0f} ms)")
    print("Light sleep (goal: p99 under 10 ms) is not built yet: every sleep is deep.")


if __name__ == "__main__":
    main()
