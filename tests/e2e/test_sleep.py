"""Sleep (scale to zero) end to end: a `min: 0` service goes SLEEPING after its idle delay
(its instance stops: nothing runs, nothing is metered), and a burst of 50 concurrent
requests to it all succeed: the edge holds them, wakes the service once, and lets them
through as soon as an instance is healthy."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest
from tests.conftest import Shoal
from tests.e2e.conftest import push_web_image, running_platform
from tests.e2e.test_edge import service
from tests.e2e.test_service_lifecycle import until
from tests.support.registry import ImageBuilder, Registry

LIVE = ("ALLOCATING", "STARTING", "HEALTHY")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory):
    yield from running_platform(tmp_path_factory.mktemp("sleep") / "data")


def test_an_idle_service_sleeps_and_a_burst_wakes_it_once(
    platform: Shoal, registry: Registry, image_builder: ImageBuilder, tmp_path: Path
):
    image = push_web_image(image_builder, registry, tmp_path, "nap", "awake\n")
    api = platform.client()
    app_id = api.post("/v1/apps", json={"name": "nap"}).json()["app"]["id"]
    definition = {
        **service(app_id, "web", image, "/", 1)["definition"],
        "scalings": [
            {"min": 0, "max": 1, "targets": [{"sleep_idle_delay": {"deep_sleep_value": 3}}]}
        ],
    }
    r = api.post("/v1/services", json={"app_id": app_id, "definition": definition})
    assert r.status_code == 200, r.text
    svc = r.json()["service"]
    host = api.get(f"/v1/apps/{app_id}").json()["app"]["domains"][0]["name"]
    dep = f"/v1/deployments/{svc['latest_deployment_id']}"

    def live() -> int:
        got = api.get("/v1/instances", params={"service_id": svc["id"], "limit": 100}).json()
        return sum(1 for i in got["instances"] if i["status"] in LIVE)

    # It serves, then sleeps once idle: its deployment SLEEPING, no instance left.
    def answer() -> str:
        try:
            return httpx.get(f"{platform.edge}/", headers={"Host": host}, timeout=10).text
        except httpx.TransportError:  # the edge starting
            return ""

    until("an answer through the edge", lambda: answer() == "awake\n")
    until("SLEEPING", lambda: api.get(dep).json()["deployment"]["status"] == "SLEEPING")
    until("no instance running", lambda: live() == 0)

    # 50 requests at once: all answered, by one woken instance.
    answers: list[tuple[int, str]] = []
    start = threading.Barrier(50)

    def client() -> None:
        start.wait()
        r = httpx.get(f"{platform.edge}/", headers={"Host": host}, timeout=60)
        answers.append((r.status_code, r.text))

    clients = [threading.Thread(target=client) for _ in range(50)]
    for t in clients:
        t.start()
    for t in clients:
        t.join()
    assert answers == [(200, "awake\n")] * 50, {a: answers.count(a) for a in set(answers)}
    events = api.get("/v1/service_events", params={"service_id": svc["id"], "limit": 100}).json()[
        "events"
    ]
    woken = [e for e in events if e["type"] == "wake"]
    slept = [e for e in events if e["type"] == "autoscale" and "sleeping" in e["message"]]
    assert len(woken) == 1 and len(slept) == 1, [e["message"] for e in events]
    assert live() == 1
    until("HEALTHY again", lambda: api.get(dep).json()["deployment"]["status"] == "HEALTHY")
