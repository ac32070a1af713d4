"""Autoscaling end to end: a step of load through the edge scales a service from 1 to its
max, and back to 1 once the load stops, without exceeding max or flapping.

`shoal up` runs with a 10 s stable window (the default is 60 s) to keep the test short.
The service's instances run busybox httpd with a CGI script that takes 0.3 s to answer,
so that 8 clients keep about 8 requests in flight, for a target of 2 per instance.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
from tests.conftest import Shoal
from tests.e2e.conftest import cgi_image, running_platform
from tests.e2e.test_edge import service
from tests.e2e.test_service_lifecycle import until
from tests.support.registry import ImageBuilder, Registry

SLOW = """#!/bin/sh
sleep 0.3
printf 'Content-Type: text/plain\\r\\n\\r\\nslow\\n'
"""
LIVE = ("ALLOCATING", "STARTING", "HEALTHY")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("autoscale") / "data"
    yield from running_platform(data, "--autoscale-window", "10")


def test_a_step_of_load_scales_up_to_max_and_back_to_one(
    platform: Shoal, registry: Registry, image_builder: ImageBuilder, tmp_path: Path
):
    image = cgi_image(image_builder, registry, tmp_path, "slow", {"slow": SLOW})
    api = platform.client()
    app_id = api.post("/v1/apps", json={"name": "busy"}).json()["app"]["id"]
    definition = {
        **service(app_id, "web", image, "/", 1)["definition"],
        "scalings": [{"min": 1, "max": 3, "targets": [{"concurrent_requests": {"value": 2}}]}],
    }
    r = api.post("/v1/services", json={"app_id": app_id, "definition": definition})
    assert r.status_code == 200, r.text
    svc_id = r.json()["service"]["id"]
    until(
        "the service healthy",
        lambda: api.get(f"/v1/services/{svc_id}").json()["service"]["status"] == "HEALTHY",
    )
    host = api.get(f"/v1/apps/{app_id}").json()["app"]["domains"][0]["name"]

    def live() -> int:
        got = api.get("/v1/instances", params={"service_id": svc_id, "limit": 100}).json()
        return sum(1 for i in got["instances"] if i["status"] in LIVE)

    until("one instance", lambda: live() == 1)
    until(  # the edge takes a new service's route soon after it is healthy
        "the service through the edge",
        lambda: httpx.get(f"{platform.edge}/index.html", headers={"Host": host}).status_code == 200,
    )
    statuses: list[tuple[int, str]] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(base_url=platform.edge, headers={"Host": host}, timeout=30) as c:
            while not stop.is_set():
                r = c.get("/cgi-bin/slow")
                statuses.append((r.status_code, r.text[:80]))

    counts: list[int] = []
    held: list[int] = []
    clients = [threading.Thread(target=client) for _ in range(8)]
    for t in clients:
        t.start()
    try:
        until("three instances under load", lambda: counts.append(live()) or counts[-1] == 3)
        for _ in range(10):
            held.append(live())
            time.sleep(0.5)
    finally:
        stop.set()
        for t in clients:
            t.join()
    until("back to one instance", lambda: counts.append(live()) or counts[-1] == 1)

    assert max(counts + held) == 3  # never more than max
    assert held == [3] * 10  # while the load lasts
    assert {code for code, _ in statuses} == {200}, {s: statuses.count(s) for s in set(statuses)}
    events = api.get(
        "/v1/service_events", params={"service_id": svc_id, "types": "autoscale", "limit": 100}
    ).json()["events"]
    scaled = [e["message"] for e in reversed(events) if e["type"] == "autoscale"]
    assert scaled and "concurrent requests" in scaled[0]
    steps = [int(m.split(" to ")[1].split(" ")[0]) for m in scaled]
    peak = steps.index(max(steps))
    assert steps[: peak + 1] == sorted(steps[: peak + 1])  # up, then
    assert steps[peak:] == sorted(steps[peak:], reverse=True)  # only down: no flapping
    assert steps[-1] == 1

    # The node sampled the instances' CPU (busy while the load lasted) and memory.
    params = {"service_id": svc_id, "step": "1m"}
    for name in ("CPU_TOTAL_PERCENT", "MEM_RSS"):
        got = api.get("/v1/streams/metrics", params={**params, "name": name}).json()["metrics"]
        assert len(got) >= 3 and all(p["value"] > 0 for m in got for p in m["samples"]), name
