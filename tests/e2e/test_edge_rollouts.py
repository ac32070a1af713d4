"""No request lost: under a steady load through the edge, 20 consecutive redeploys of a
service and the SIGKILL of one of its instances every few seconds fail no GET.

The one loss no proxy can undo is a response the SIGKILL cuts in the middle: busybox httpd
writes the headers, then sends the file in a second call; a kill between the two leaves the
client with headers and no body (the edge has already passed the headers on, so it cannot
retry). Such a cut is accepted only right after a kill; anywhere else (a rollout stopping an
instance that still had a request) it fails the test.

Real everything: `shoal up` with its node agent and edge, busybox httpd instances in sandboxes,
HTTP/1.1 keep-alive clients in threads (a few hundred requests a second on this machine).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from tests.conftest import Shoal
from tests.e2e.conftest import push_web_image
from tests.e2e.test_edge import until

REDEPLOYS = 20
ROLLOUT_S = 30  # for a redeploy to take over, before the next one
KILL_EVERY_S = 4.0
CUT_AFTER_KILL_S = 1.0  # a response cut this soon after a SIGKILL is the kill's doing
CLIENTS = 4
PACE_S = 0.01  # each client at most 100 requests a second


def definition(image: str) -> dict[str, Any]:
    return {
        "name": "steady",
        "type": "WEB",
        "docker": {"image": image},
        "ports": [{"port": 8000, "protocol": "http"}],
        "routes": [{"path": "/", "port": 8000}],
        "regions": ["fra"],
        "scalings": [{"min": 2, "max": 2}],
        "health_checks": [
            {"http": {"port": 8000, "path": "/index.html"}, "grace_period": 1, "interval": 1}
        ],
    }


def answers(url: str, headers: dict[str, str]) -> bool:
    try:
        return httpx.get(url, headers=headers, timeout=5).status_code == 200
    except httpx.TransportError:  # the edge not listening yet
        return False


def app_pids(shoal: Shoal, instance_id: str) -> list[int]:
    """The application's processes in the instance's sandbox (not the sandbox's monitor)."""
    root = shoal.data_dir / "nodes" / "fra" / "runtime" / "instances" / instance_id
    try:
        record = json.loads((root / "instance.json").read_text())
        procs = Path(next(iter(record["cgroup_dirs"].values()))) / "cgroup.procs"
        return [int(p) for p in procs.read_text().split() if int(p) != record["pid"]]
    except (OSError, ValueError, StopIteration):
        return []  # it is going away meanwhile


def test_redeploys_and_killed_instances_lose_no_request(
    platform: Shoal, registry, image_builder, tmp_path: Path
):
    image = push_web_image(image_builder, registry, tmp_path, "steady", "steady")
    with platform.client() as api:
        app_id = api.post("/v1/apps", json={"name": "steady"}).json()["app"]["id"]
        r = api.post("/v1/services", json={"app_id": app_id, "definition": definition(image)})
        assert r.status_code == 200, r.text
        svc_id = r.json()["service"]["id"]
        url = platform.edge + "/index.html"
        headers = {"Host": "steady-default.localhost"}
        until("the service through the edge", lambda: answers(url, headers))

        stop = threading.Event()
        outcomes: Counter[str] = Counter()
        lock = threading.Lock()
        kills: list[float] = []
        cuts: list[float] = []

        def client() -> None:
            with httpx.Client(headers=headers, timeout=10) as c:
                while not stop.is_set():
                    try:
                        r = c.get(url)
                        outcome = (
                            "ok"
                            if r.status_code == 200 and r.text == "steady"
                            else f"{r.status_code} {r.text[:80]!r} from {r.headers.get('server')}"
                        )
                    except httpx.RemoteProtocolError as e:
                        if "without sending complete message body" not in str(e):
                            outcome = f"{type(e).__name__}: {e}"
                        else:
                            outcome = "(cut mid-response)"
                            with lock:
                                cuts.append(time.monotonic())
                    except httpx.HTTPError as e:
                        outcome = f"{type(e).__name__}: {e}"
                    with lock:
                        outcomes[outcome] += 1
                    time.sleep(PACE_S)

        def killer() -> None:
            while not stop.wait(KILL_EVERY_S):
                running = api_ids()
                pids = app_pids(platform, random.choice(running)) if running else []
                with lock:
                    kills.extend([time.monotonic()] if pids else [])
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                with lock:
                    outcomes["(instances killed)"] += bool(pids)

        def api_ids() -> list[str]:
            """The healthy instances of the active deployment (one of a deployment not yet
            healthy as a whole would fail it, as a crash in a new version should)."""
            with platform.client() as a:
                active = a.get(f"/v1/services/{svc_id}").json()["service"]["active_deployment_id"]
                listed = a.get(
                    "/v1/instances", params={"deployment_id": active, "statuses": "HEALTHY"}
                )
                return [i["id"] for i in listed.json()["instances"]]

        activated, stalled = 0, []
        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        threads.append(threading.Thread(target=killer))
        started = time.monotonic()
        for t in threads:
            t.start()
        try:
            for _ in range(REDEPLOYS):
                r = api.post(f"/v1/services/{svc_id}/redeploy", json={})
                assert r.status_code == 200, r.text
                new = r.json()["deployment"]["id"]
                deadline = time.monotonic() + ROLLOUT_S
                while time.monotonic() < deadline:
                    svc = api.get(f"/v1/services/{svc_id}").json()["service"]
                    if svc["active_deployment_id"] == new:
                        activated += 1
                        break
                    time.sleep(0.2)
                else:  # the next redeploy supersedes it
                    stalled.append(new)
        finally:
            stop.set()
            for t in threads:
                t.join()
        elapsed = time.monotonic() - started
    failed = {
        k: v
        for k, v in outcomes.items()
        if k not in ("ok", "(instances killed)", "(cut mid-response)")
    }
    not_killed = [c for c in cuts if not any(0 <= c - k <= CUT_AFTER_KILL_S for k in kills)]
    load = f"{outcomes['ok']} answered in {elapsed:.0f} s"
    assert outcomes["(instances killed)"] >= 3, outcomes
    # A rollout right after an instance of the new active deployment was killed has been seen
    # to stall (about one run in four; open): the requests are what this test is about.
    assert activated >= REDEPLOYS - 3, f"{activated} redeploys took over; stalled: {stalled}"
    assert failed == {}, f"{sum(failed.values())} failed ({load}): {failed}"
    assert not_killed == [], f"{len(not_killed)} responses cut with no kill just before ({load})"
