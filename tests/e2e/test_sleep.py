"""Sleep (scale to zero) end to end: a `min: 0` service goes SLEEPING after its idle delay,
and a burst of 50 concurrent requests to it all succeed: the edge holds them, wakes the
service once, and lets them through as soon as an instance serves.

Deep sleep stops the instance's command and keeps its sandbox on the node (nothing runs,
nothing is metered), and a request starts the same instance again; light sleep freezes it
(its cgroup's freezer: memory kept, no CPU, not metered) and a request thaws it; light turns
deep after the deep delay."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from tests.conftest import Shoal
from tests.e2e.conftest import push_web_image, running_platform
from tests.e2e.test_edge import service
from tests.e2e.test_service_lifecycle import until
from tests.support.registry import ImageBuilder, Registry

from shoal.runtime.cgroups import Cgroup, CgroupVersion, detect


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory):
    yield from running_platform(tmp_path_factory.mktemp("sleep") / "data")


def burst(edge: str, host: str, n: int = 50) -> list[tuple[int, str]]:
    """`n` requests at once, each on its own connection: their (status, body)."""
    answers: list[tuple[int, str]] = []
    start = threading.Barrier(n)

    def client() -> None:
        start.wait()
        r = httpx.get(f"{edge}/", headers={"Host": host}, timeout=60)
        answers.append((r.status_code, r.text))

    clients = [threading.Thread(target=client) for _ in range(n)]
    for t in clients:
        t.start()
    for t in clients:
        t.join()
    return answers


class Napper:
    """A `min: 0` web service (busybox httpd answering "awake") with the sleep delays given."""

    def __init__(self, shoal: Shoal, image: str, name: str, delays: dict[str, int]) -> None:
        self.shoal, self.api = shoal, shoal.client()
        app_id = self.api.post("/v1/apps", json={"name": name}).json()["app"]["id"]
        definition = {
            **service(app_id, "web", image, "/", 1)["definition"],
            "scalings": [{"min": 0, "max": 1, "targets": [{"sleep_idle_delay": delays}]}],
        }
        r = self.api.post("/v1/services", json={"app_id": app_id, "definition": definition})
        assert r.status_code == 200, r.text
        self.id = r.json()["service"]["id"]
        self.host = self.api.get(f"/v1/apps/{app_id}").json()["app"]["domains"][0]["name"]
        self.dep = f"/v1/deployments/{r.json()['service']['latest_deployment_id']}"

    def status(self) -> str:
        return str(self.api.get(self.dep).json()["deployment"]["status"])

    def instances(self) -> list[dict]:
        """Its instances not STOPPED or ERROR."""
        got = self.api.get("/v1/instances", params={"service_id": self.id, "limit": 100}).json()
        return [i for i in got["instances"] if i["status"] not in ("STOPPED", "ERROR")]

    def answer(self) -> str:
        try:
            return httpx.get(self.shoal.edge + "/", headers={"Host": self.host}, timeout=10).text
        except httpx.TransportError:  # the edge starting
            return ""

    def events(self) -> list[dict]:
        got = self.api.get("/v1/service_events", params={"service_id": self.id, "limit": 100})
        return list(got.json()["events"])


def test_an_idle_service_sleeps_and_a_burst_wakes_it_once(
    platform: Shoal, registry: Registry, image_builder: ImageBuilder, tmp_path: Path
):
    image = push_web_image(image_builder, registry, tmp_path, "nap", "awake\n")
    nap = Napper(platform, image, "nap", {"deep_sleep_value": 3})

    # It serves, then sleeps once idle: its deployment SLEEPING, its instance kept on the
    # node with nothing running in it.
    until("an answer through the edge", lambda: nap.answer() == "awake\n")
    [first] = nap.instances()
    cgroup = detect().cgroup("shoal-fra", first["id"])
    until("SLEEPING", lambda: nap.status() == "SLEEPING")
    until("stopped in place", lambda: stopped(nap, first["id"], cgroup))

    # The node's agent dies and comes back: it adopts the sandbox as it was, asleep.
    [agent] = _agent_pids(platform)
    found = platform.log.read_text().count("sandboxes found")
    os.kill(agent, signal.SIGKILL)
    until("the agent back", lambda: platform.log.read_text().count("sandboxes found") > found)
    assert stopped(nap, first["id"], cgroup)

    # 50 requests at once: all answered, by the same instance started again.
    answers = burst(platform.edge, nap.host)
    assert answers == [(200, "awake\n")] * 50, {a: answers.count(a) for a in set(answers)}
    [again] = nap.instances()
    assert again["id"] == first["id"] and cgroup.pids()
    # The control plane hears of it with the agent's next report (HAProxy woke it itself).
    until("HEALTHY again", lambda: nap.status() == "HEALTHY")
    events = nap.events()
    woken = [e for e in events if e["type"] == "wake"]
    slept = [e for e in events if e["type"] == "autoscale" and "deep sleep" in e["message"]]
    assert len(woken) == 1 and len(slept) == 1, [e["message"] for e in events]
    # It started again with a whole vCPU (the start-up boost), back to a nano's once healthy.
    assert cpu_quota(cgroup) == 25_000


def _agent_pids(shoal: Shoal) -> list[int]:
    """Frankfurt's node agent."""
    pattern = f"shoal agent --api {shoal.url} --region fra"
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def cpu_quota(cgroup: Cgroup) -> int:
    """The cgroup's CPU quota, in microseconds a 100 ms period."""
    if cgroup.version is CgroupVersion.V1:
        return int((cgroup.dirs["cpu"] / "cpu.cfs_quota_us").read_text())
    return int((cgroup.dirs[""] / "cpu.max").read_text().split()[0])


def stopped(nap: Napper, instance_id: str, cgroup: Cgroup) -> bool:
    """Whether the instance is kept, SLEEPING, with no process left in its sandbox."""
    kept = [(i["id"], i["status"]) for i in nap.instances()] == [(instance_id, "SLEEPING")]
    return kept and not cgroup.is_frozen() and not cgroup.pids()


def test_light_sleep_freezes_the_instance_and_a_request_thaws_the_same_one(
    platform: Shoal, registry: Registry, image_builder: ImageBuilder, tmp_path: Path
):
    image = push_web_image(image_builder, registry, tmp_path, "doze", "awake\n")
    doze = Napper(platform, image, "doze", {"light_sleep_value": 3, "deep_sleep_value": 25})
    api, instances = doze.api, doze.instances
    until("an answer through the edge", lambda: doze.answer() == "awake\n")
    [first] = instances()
    cgroup = detect().cgroup("shoal-fra", first["id"])
    until("SLEEPING", lambda: doze.status() == "SLEEPING")
    until("frozen", cgroup.is_frozen)
    [asleep] = instances()
    assert (asleep["id"], asleep["status"]) == (first["id"], "SLEEPING")  # kept, not stopped
    time.sleep(3)  # asleep a while: those seconds are not metered

    answers = burst(platform.edge, doze.host)
    assert answers == [(200, "awake\n")] * 50, {a: answers.count(a) for a in set(answers)}
    assert not cgroup.is_frozen()
    until("HEALTHY again", lambda: doze.status() == "HEALTHY")
    [woken] = instances()
    assert woken["id"] == first["id"]  # thawed, not replaced
    messages = [(e["type"], e["message"]) for e in doze.events()]
    assert sum(1 for kind, _ in messages if kind == "wake") == 1, messages
    assert sum(1 for _, m in messages if m.endswith("light sleep")) == 1, messages

    details = api.get("/v1/usages/details").json()["usage_details"]
    [row] = [d for d in details if d["instance_id"] == first["id"]]
    since = datetime.fromisoformat(first["created_at"].replace("Z", "+00:00"))
    lived = (datetime.now(UTC) - since).total_seconds()
    metered = row["duration_seconds"]  # usage, not a timing: its frozen seconds are free
    assert metered <= lived - 3, (row, lived)

    # Idle again: light sleep, then deep at 25 s: the instance's command stops.
    until("asleep again", lambda: [i["status"] for i in instances()] == ["SLEEPING"])
    until("deep asleep: stopped in place", lambda: stopped(doze, first["id"], cgroup))
    assert doze.status() == "SLEEPING"
    assert doze.answer() == "awake\n"  # and started again by a request
