"""Waking a sleeping service, light and deep, against the floor: the same app started directly.

    .venv/bin/python bench/bench_wake.py [--runs N]

Starts `shoal up --local-git` with its node agent and edge (needs root) and deploys a
reference Python web app (the standard library's http.server, from a local git repository,
run on the node's stack) twice, both `min: 0`:
  light   `light_sleep_value` 1 s (deep after an hour): once idle, its instance is frozen
          (cgroup freezer); a request makes the edge's HAProxy ask the node's agent to
          thaw it (edge/wake.lua), then goes to it;
  deep    `deep_sleep_value` 1 s: once idle, its instance's command stops (its sandbox is
          kept on the node); a request makes HAProxy ask the agent to start it again, and
          waits for it to be healthy.
Both run as the default instance type, nano (a quarter of a vCPU; its start-up CPU boost
gives it a whole one until healthy). Each run waits until both sleep (light: the
instance's cgroup frozen; deep: no process left in it), then times one GET through the
edge to each (the next only once the control plane has the last one awake again: a wake
is timed on a platform otherwise at rest, not while it digests the one before), from the
connect to the last byte of the answer (a raw socket, a new connection, as a browser's
first request). The floor: the same app started as a plain host process, timed from its
start to its first answer, polled every 1 ms, in the same run.
Prints p50 and p99 of each over the runs. Goals (issue 6): light wake p99 under 10 ms; deep
wake p99 within 30 ms of the direct start.

Then the autoscaler's reaction (`reaction`): a step of load on an autoscaled service, timed
to the first answer from the instance it adds; goal: under 3 s. Last, on a fresh platform,
capacity (bench/capacity.py): 1,000 sleeping services and 200 running instances on one node,
and the platform's memory per instance; goal: under 2 MiB.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.bench_deploy import pct
from bench.capacity import capacity
from bench.common import Machine, delete_apps
from tests.conftest import free_port, start_shoal
from tests.support.registry import (
    BuildConfig,
    ImageBuilder,
    Registry,
    busybox_rootfs,
    start_registry,
)

from shoal.runtime.cgroups import detect

CGROUPS = detect()

APP = """\
import http.server, os, socket, time
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/slow":
            time.sleep(0.3)
        body = b"awake " + socket.gethostname().encode()
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

    def status(self) -> str:
        return str(self.api.get(self.dep).json()["deployment"]["status"])

    def asleep(self) -> bool:
        if self.status() != "SLEEPING":
            return False
        live = self.instances()
        if not live or any(i["status"] != "SLEEPING" for i in live):
            return False
        cgroups = [CGROUPS.cgroup("shoal-fra", i["id"]) for i in live]
        if self.name == "deep":
            return not any(c.pids() for c in cgroups)
        return all(c.is_frozen() for c in cgroups)

    def wait_asleep(self) -> None:
        self._wait(self.asleep, "go to sleep")

    def wait_awake(self) -> None:
        self._wait(lambda: self.status() == "HEALTHY", "wake")

    def _wait(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 300
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: the service did not {what}")
            time.sleep(0.1)


def reaction(api: httpx.Client, edge: str, source: Path, runs: int) -> list[float]:
    """Seconds from a step of load to the first answer from an instance the autoscaler added:
    a service of `min` 1, `max` 3, a target of 2 concurrent requests per instance, and 8
    clients of a request that takes 0.3 s (8 in flight). Between runs the load stops until
    the service is back to one instance."""
    app_id = api.post("/v1/apps", json={"name": "react"}).json()["app"]["id"]
    body = definition(source, "web", {})
    body["scalings"] = [{"min": 1, "max": 3, "targets": [{"concurrent_requests": {"value": 2}}]}]
    svc = api.post("/v1/services", json={"app_id": app_id, "definition": body}).json()
    service_id = svc["service"]["id"]
    host = api.get(f"/v1/apps/{app_id}").json()["app"]["domains"][0]["name"]

    def serving() -> int:
        listed = api.get("/v1/instances", params={"service_id": service_id}).json()
        return sum(1 for i in listed["instances"] if i["status"] != "STOPPED")

    took = []
    with httpx.Client(base_url=edge, headers={"Host": host}, timeout=30) as c:
        for n in range(runs):
            deadline = time.monotonic() + 300
            while serving() != 1 or c.get("/").status_code != 200:
                if time.monotonic() > deadline:
                    raise TimeoutError("react: the service did not come back to one instance")
                time.sleep(0.2)
            seconds = load_step(edge, host, c.get("/").text.split()[-1])
            took.append(seconds)
            print(f"  reaction {n + 1}: {seconds * 1000:.0f} ms", flush=True)
    delete_apps(api, app_id)
    return took


def load_step(edge: str, host: str, first: str) -> float:
    """8 clients of /slow at once until one is answered by an instance other than `first`
    (by its host name): the seconds from the step to that answer."""
    added, stop = threading.Event(), threading.Event()
    at: list[float] = []
    t0 = time.monotonic()

    def client() -> None:
        with httpx.Client(base_url=edge, headers={"Host": host}, timeout=30) as load:
            while not stop.is_set():
                if load.get("/slow").text.split()[-1] != first and not added.is_set():
                    at.append(time.monotonic() - t0)
                    added.set()

    clients = [threading.Thread(target=client) for _ in range(8)]
    for thread in clients:
        thread.start()
    added.wait(120)
    stop.set()
    for thread in clients:
        thread.join()
    if not at:
        raise TimeoutError("react: no instance was added under load")
    return min(at)


def wakes(api: httpx.Client, edge: str, source: Path, runs: int) -> dict[str, list[float]]:
    """Seconds to the first answer of each light and deep wake, and of each direct start."""
    took: dict[str, list[float]] = {"light": [], "deep": [], "direct": []}
    sleepers = [
        Sleeper(api, source, "light", {"light_sleep_value": 1, "deep_sleep_value": 3600}),
        Sleeper(api, source, "deep", {"deep_sleep_value": 1}),
    ]
    for n in range(runs + 1):
        line = []
        for s in sleepers:
            s.wait_asleep()
            seconds, answer = first_response(edge, s.host)
            status = answer.split(b"\r\n", 1)[0].split()[1:2]  # HTTP/1.0 from the app itself
            if status != [b"200"] or b"awake" not in answer:
                raise RuntimeError(f"{s.name} wake {n}: {answer[:300]!r}")
            if n:  # the first also builds the app
                took[s.name].append(seconds)
            line.append(f"{s.name} {seconds * 1000:.1f} ms")
            s.wait_awake()  # the platform done with this wake before the next is timed
        if n:
            took["direct"].append(direct(source))
        print(f"  run {n}: " + ", ".join(line), flush=True)
    delete_apps(api, *(s.app_id for s in sleepers))
    return took


def report_wakes(took: dict[str, list[float]], cpus: int) -> None:
    ms = {k: [x * 1000 for x in v] for k, v in took.items()}
    print(f"{len(ms['light'])} wakes of each service (a Python app) through the edge, {cpus} CPUs")
    for name, label in (
        ("light", "light wake (first answer)"),
        ("deep", "deep wake (first answer)"),
        ("direct", "direct start (floor)"),
    ):
        print(f"  {label:27} p50 {pct(ms[name], 50):7.1f} ms, p99 {pct(ms[name], 99):7.1f} ms")
    light = pct(ms["light"], 99)
    verdict = "met" if light < 10 else "NOT MET"
    print(f"Goal: light wake p99 under 10 ms: {verdict} ({light:.1f} ms)")
    gap = pct(ms["deep"], 99) - pct(ms["direct"], 99)
    verdict = "met" if gap <= 30 else "NOT MET"
    print(f"Goal: deep wake p99 within 30 ms of the direct start: {verdict} (+{gap:.0f} ms)")


def report_reactions(reactions: list[float]) -> None:
    slowest = max(reactions)
    print(
        f"Autoscaling reaction (a load step to an added instance's first answer), "
        f"{len(reactions)} steps: p50 {pct(reactions, 50) * 1000:.0f} ms, "
        f"max {slowest * 1000:.0f} ms"
    )
    verdict = "met" if slowest < 3 else "NOT MET"
    print(f"Goal: autoscaling reaction under 3 s: {verdict} (slowest {slowest * 1000:.0f} ms)")


def hello_image(root: Path, registry: Registry, builder: ImageBuilder) -> str:
    """busybox httpd serving "hello" on port 8000, pushed to `registry`."""
    files = busybox_rootfs(root / "image")
    (files / "www").mkdir()
    (files / "www" / "index.html").write_text("hello")
    entry = ["/bin/busybox", "httpd", "-f", "-p", "8000", "-h", "/www"]
    return builder.push(files, registry, "hello", config=BuildConfig(entrypoint=entry))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30, help="wakes of each service (0: none)")
    parser.add_argument("--reactions", type=int, default=5, help="load steps (0: none)")
    parser.add_argument("--sleeping", type=int, default=1000, help="capacity: services asleep")
    parser.add_argument("--running", type=int, default=200, help="capacity: instances running")
    args = parser.parse_args()
    machine = Machine.sample()
    print(machine.describe(), flush=True)
    root = Path(tempfile.mkdtemp(prefix="shoal-bench-wake-"))
    shoal = None
    took: dict[str, list[float]] = {}
    reactions: list[float] = []
    held: list[str] = []
    try:
        if args.runs or args.reactions:
            source = repo(root)
            # A 10 s stable window (60 s by default) brings the autoscaled service back to one
            # instance sooner between load steps; it does not change how fast it scales up.
            shoal = start_shoal(
                root / "data", None, "--local-git", "--autoscale-window", "10", agents=True
            )
            api = shoal.client()
            if args.runs:
                took = wakes(api, shoal.edge, source, args.runs)
            if args.reactions:
                reactions = reaction(api, shoal.edge, source, args.reactions)
            shoal.stop()
            shoal = None
        if args.sleeping and args.running:
            registry = start_registry(root / "registry")
            builder = ImageBuilder(root / "buildah")
            try:
                image = hello_image(root, registry, builder)
                held = capacity(root, image, args.sleeping, args.running)
            finally:
                builder.close()
                registry.stop()
    finally:
        if shoal is not None:
            shoal.stop()
        shutil.rmtree(root, ignore_errors=True)
    print()
    if took:
        report_wakes(took, machine.cpus)
    if reactions:
        report_reactions(reactions)
    for line in held:
        print(line)
    if caveat := machine.caveat():
        print(caveat)


if __name__ == "__main__":
    main()
