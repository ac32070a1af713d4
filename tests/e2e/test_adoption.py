"""The agent dies (SIGKILL) and comes back: running instances are adopted, not restarted.
An instance whose process dies is replaced by a new one."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
from pathlib import Path

import httpx
from tests.conftest import Shoal
from tests.e2e.conftest import push_web_image
from tests.e2e.test_service_lifecycle import definition, until


def _healthy(shoal: Shoal, service_id: str) -> list[tuple[str, str]]:
    with sqlite3.connect(shoal.data_dir / "shoal.db") as db:
        return db.execute(
            "select id, address from instances where service_id = ? and status = 'HEALTHY'",
            (service_id,),
        ).fetchall()


def _record(shoal: Shoal, instance_id: str) -> dict:
    root = shoal.data_dir / "nodes" / "fra" / "runtime" / "instances" / instance_id
    return json.loads((root / "instance.json").read_text())


def _sandbox_pid(shoal: Shoal, instance_id: str) -> int:
    return int(_record(shoal, instance_id)["pid"])


def _app_pids(shoal: Shoal, instance_id: str) -> list[int]:
    """The application's processes: those of the instance's cgroup but the sandbox monitor."""
    record = _record(shoal, instance_id)
    procs = Path(next(iter(record["cgroup_dirs"].values()))) / "cgroup.procs"
    return [int(p) for p in procs.read_text().split() if int(p) != record["pid"]]


def _agent_pids(shoal: Shoal) -> set[int]:
    out = subprocess.run(
        ["pgrep", "-f", f"shoal agent --api {shoal.url}"], capture_output=True, text=True
    ).stdout
    return {int(p) for p in out.split()}


def test_agent_restart_adopts_and_dead_instances_are_replaced(
    platform: Shoal, registry, image_builder, tmp_path: Path
):
    image = push_web_image(image_builder, registry, tmp_path, "adopt", "still here")
    with platform.client() as api:
        app = api.post("/v1/apps", json={"name": "adopt"}).json()["app"]
        svc = api.post("/v1/services", json={"app_id": app["id"], "definition": definition(image)})
        service_id = svc.json()["service"]["id"]
        [(instance_id, address)] = until(
            "a healthy instance", lambda: _healthy(platform, service_id)
        )
        pid = _sandbox_pid(platform, instance_id)

        [agent] = _agent_pids(platform)
        found_before = platform.log.read_text().count("1 sandboxes found")
        os.kill(agent, signal.SIGKILL)
        until(
            "the agent back, having adopted the sandbox",
            lambda: platform.log.read_text().count("1 sandboxes found") > found_before,
        )
        assert _agent_pids(platform) - {agent}
        assert _sandbox_pid(platform, instance_id) == pid  # the same process: not restarted
        assert httpx.get(f"http://{address}:8000/").text == "still here"
        assert _healthy(platform, service_id) == [(instance_id, address)]

        for app_pid in _app_pids(platform, instance_id):  # the instance's process dies
            with contextlib.suppress(ProcessLookupError):  # httpd's child for one request
                os.kill(app_pid, signal.SIGKILL)
        replaced = until(
            "a new healthy instance",
            lambda: [i for i in _healthy(platform, service_id) if i[0] != instance_id],
        )
        [(_, new_address)] = replaced
        assert httpx.get(f"http://{new_address}:8000/").text == "still here"
        old = api.get(f"/v1/instances/{instance_id}").json()["instance"]
        assert old["status"] == "ERROR" and "killed by signal 9" in old["messages"][0]
        api.delete(f"/v1/apps/{app['id']}")
