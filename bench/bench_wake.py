"""Waking a sleeping service, light and deep, against the floor: the same app started directly.

    .venv/bin/python bench/bench_wake.py [--runs N]

Starts `shoal up --local-git` with its node agent and edge (needs root) and deploys a
reference Python web app (the standard library's http.server, from a local git repository,
run on the node's stack) twice, both `min: 0`:
  light   `light_sleep_value` 1 s (deep after an hour): once idle, its instance is frozen
          (cgroup freezer); a request makes the edge's activator ask the node's agent to
          thaw it, and is proxied to it;
  deep    `deep_sleep_value` 1 s: once idle, its instance stops; a request makes the
          activator wake the service through the control plane, and waits for the new
          instance to be healthy.
Each run waits until both sleep (light: the instance's cgroup frozen; deep: no instance
left), then times one GET through the edge to each, from the connect to the last byte of
the answer (a raw socket, a new connection, as a browser's first request). The floor: the
same app started as a plain host process, timed from its start to its first answer, polled
every 1 ms, in the same run. Prints p50 and p99 of each over the runs. Goals (issue 6):
light wake p99 under 10 ms; deep wake p99 within 30 ms of the direct start.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.bench_deploy import pct
from bench.common import Machine, delete_app
from tests.conftest import free_port, start_shoal

from shoal.runtime.cgroups import detect

CGROUPS = detect()

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


def first_response(edge: str, host: str) -> tuple[float, bytes]:
    """Seconds from connecting to the edge to the end of the answer to one GET, and the
    answer."""
    address, port = edge.removeprefix("http://").rsplit(":", 1)
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    t0 = time.monotonic()
    with socket.create_connection((address, int(port)), timeout=60) as s:
        s.sendall(request)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    return time.monotonic() - t0, answer


def definition(source: Path, name: str, delay: dict[str, int]) -> dict[str, Any]:
    return {
        "name": name,
        "git": {"repository": str(source), "branch": "main", "run_command": "python3 app.py"},
        "ports": [{"port": 8000, "protocol": "http"}],
        "routes": [{"path": "/", "port": 8000}],
        "regions": ["fra"],
        "scalings": [{"min": 0, "max": 1, "targets": [{"sleep_idle_delay": delay}]}],
    }


class Sleeper:
    """One of the two services, and how to tell it is asleep."""

    def __init__(self, api: httpx.Client, source: Path, name: str, delay: dict[str, int]):
        self.api, self.name = api, name
        self.app_id = api.post("/v1/apps", json={"name": name}).json()["app"]["id"]
        body = {"app_id": self.app_id, "definition": definition(source, "web", delay)}
        svc = api.post("/v1/services", json=body).json()["service"]
        self.service_id = svc["id"]
        self.dep = f"/v1/deployments/{svc['latest_deployment_id']}"
        self.host = api.get(f"/v1/apps/{self.app_id}").json()["app"]["domains"][0]["name"]

    def instances(self) -> list[dict[str, Any]]:
        listed = self.api.get("/v1/instances", params={"service_id": self.service_id})
        return [i for i in listed.json()["instances"] if i["status"] not in ("STOPPED", "ERROR")]

    def asleep(self) -> bool:
        if self.api.get(self.dep).json()["deployment"]["status"] != "SLEEPING":
            return False
        live = self.instances()
        if self.name == "deep":
            return not live
        return bool(live) and all(
            i["status"] == "SLEEPING" and CGROUPS.cgroup("shoal-fra", i["id"]).is_frozen()
            for i in live
        )

    def wait_asleep(self) -> None:
        deadline = time.monotonic() + 300
        while not self.asleep():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: the service did not go to sleep")
            time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    runs = parser.parse_args().runs
    machine = Machine.sample()
    print(machine.describe(), flush=True)
    root = Path(tempfile.mkdtemp(prefix="shoal-bench-wake-"))
    shoal = None
    took: dict[str, list[float]] = {"light": [], "deep": [], "direct": []}
    try:
        source = repo(root)
        shoal = start_shoal(root / "data", None, "--local-git", agents=True)
        api = shoal.client()
        sleepers = [
            Sleeper(api, source, "light", {"light_sleep_value": 1, "deep_sleep_value": 3600}),
            Sleeper(api, source, "deep", {"deep_sleep_value": 1}),
        ]
        for n in range(runs + 1):
            line = []
            for s in sleepers:
                s.wait_asleep()
                seconds, answer = first_response(shoal.edge, s.host)
                if not answer.startswith(b"HTTP/1.1 200") or b"awake" not in answer:
                    raise RuntimeError(f"{s.name} wake {n}: {answer[:300]!r}")
                if n:  # the first also builds the app
                    took[s.name].append(seconds)
                line.append(f"{s.name} {seconds * 1000:.1f} ms")
            if n:
                took["direct"].append(direct(source))
            print(f"  run {n}: " + ", ".join(line), flush=True)
        for s in sleepers:
            delete_app(api, s.app_id)
    finally:
        if shoal is not None:
            shoal.stop()
        shutil.rmtree(root, ignore_errors=True)
    ms = {k: [x * 1000 for x in v] for k, v in took.items()}
    print(f"\n{runs} wakes of each service (a Python app) through the edge, {machine.cpus} CPUs")
    for name, label in (
        ("light", "light wake (first answer)"),
        ("deep", "deep wake (first answer)"),
        ("direct", "direct start (floor)"),
    ):
        print(f"  {label:27} p50 {pct(ms[name], 50):7.1f} ms, p99 {pct(ms[name], 99):7.1f} ms")
    light = pct(ms["light"], 99)
    print(
        f"Goal: light wake p99 under 10 ms: {'met' if light < 10 else 'NOT MET'} ({light:.1f} ms)"
    )
    gap = pct(ms["deep"], 99) - pct(ms["direct"], 99)
    verdict = "met" if gap <= 30 else "NOT MET"
    print(f"Goal: deep wake p99 within 30 ms of the direct start: {verdict} (+{gap:.0f} ms)")
    if caveat := machine.caveat():
        print(caveat)


if __name__ == "__main__":
    main()
