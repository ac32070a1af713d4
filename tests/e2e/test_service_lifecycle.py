"""A service from a container image, end to end: the real koyeb-sdk against `shoal up` with
its node agent, real sandboxes, images from a registry the test starts.

Create → HEALTHY and answering; update to an image that exits → that deployment ERRORs with
the exit message and the old one still answers; pause → nothing runs; resume → answers
again; delete → nothing left running or mounted.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from koyeb import api as koyeb
from tests.conftest import Shoal
from tests.e2e.conftest import push_web_image
from tests.support.registry import BuildConfig, busybox_rootfs

TIMEOUT_S = 60


def until(what: str, check: Callable[[], Any]) -> Any:
    """Poll `check` until it returns something truthy (a test of behaviour, not of speed)."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def sdk(shoal: Shoal) -> koyeb.ApiClient:
    config = koyeb.Configuration(host=shoal.url)
    config.api_key["Bearer"] = shoal.admin_token
    config.api_key_prefix["Bearer"] = "Bearer"
    return koyeb.ApiClient(config)


def addresses(shoal: Shoal, deployment_id: str) -> list[str]:
    """Where the node reaches the deployment's running instances (the edge's view, which
    the API does not show: read from the store)."""
    with sqlite3.connect(shoal.data_dir / "shoal.db") as db:
        rows = db.execute(
            "select address from instances where deployment_id = ? and status = 'HEALTHY'",
            (deployment_id,),
        ).fetchall()
    return [r[0] for r in rows if r[0]]


def answer(address: str) -> str:
    return httpx.get(f"http://{address}:8000/", timeout=5).text


def definition(image: str) -> dict[str, Any]:
    return {
        "name": "web",
        "type": "WEB",
        "docker": {"image": image},
        "ports": [{"port": 8000, "protocol": "http"}],
        "routes": [{"path": "/", "port": 8000}],
        "regions": ["fra"],
        "instance_types": [{"type": "nano"}],
        "scalings": [{"min": 1, "max": 1}],
        "health_checks": [{"http": {"port": 8000, "path": "/index.html"}}],
    }


def test_service_lifecycle(platform: Shoal, registry, image_builder, tmp_path: Path):
    good = push_web_image(image_builder, registry, tmp_path, "hello", "hello from shoal")
    bad_files = busybox_rootfs(tmp_path / "crash")
    bad = image_builder.push(
        bad_files, registry, "crash", config=BuildConfig(entrypoint=["/bin/sh", "-c", "exit 1"])
    )
    client = sdk(platform)
    apps = koyeb.AppsApi(client)
    services = koyeb.ServicesApi(client)
    deployments = koyeb.DeploymentsApi(client)

    app = apps.create_app(app=koyeb.CreateApp(name="shop")).app
    created = services.create_service(
        service=koyeb.CreateService.from_dict({"app_id": app.id, "definition": definition(good)})
    ).service
    first = created.latest_deployment_id

    until("service HEALTHY", lambda: services.get_service(created.id).service.status == "HEALTHY")
    dep = deployments.get_deployment(first).deployment
    assert dep.status == "HEALTHY" and dep.role == "ACTIVE"
    [address] = until("an address", lambda: addresses(platform, first))
    assert answer(address) == "hello from shoal"
    [inst] = koyeb.InstancesApi(client).list_instances(service_id=created.id).instances
    assert inst.status == "HEALTHY" and inst.region == "fra" and inst.type == "nano"

    # An image that exits at start: its deployment fails, the old one keeps serving.
    services.update_service(
        created.id, service=koyeb.UpdateService.from_dict({"definition": definition(bad)})
    )
    second = services.get_service(created.id).service.latest_deployment_id
    assert second != first
    failed = until(
        "the new deployment to fail",
        lambda: (d := deployments.get_deployment(second).deployment).status == "ERROR" and d,
    )
    assert any("exited with code 1" in m for m in failed.messages), failed.messages
    svc = services.get_service(created.id).service
    assert svc.active_deployment_id == first
    assert svc.status == "DEGRADED"
    assert answer(address) == "hello from shoal"

    # Pause: nothing runs. Resume: a new deployment of the latest definition... which is the
    # failing one, so go back to the good image first.
    services.update_service(
        created.id, service=koyeb.UpdateService.from_dict({"definition": definition(good)})
    )
    until("healthy again", lambda: services.get_service(created.id).service.status == "HEALTHY")
    services.pause_service(created.id)
    until("PAUSED", lambda: services.get_service(created.id).service.status == "PAUSED")
    until("its sandboxes removed", lambda: not _sandboxes(platform))
    services.resume_service(created.id)
    until(
        "HEALTHY after resume", lambda: services.get_service(created.id).service.status == "HEALTHY"
    )
    latest = services.get_service(created.id).service.latest_deployment_id
    [address] = until("an address", lambda: addresses(platform, latest))
    assert answer(address) == "hello from shoal"

    # Logs: the app's own lines and the platform's.
    logs = httpx.get(
        f"{platform.url}/v1/streams/logs/query",
        params={"service_id": created.id, "order": "asc"},
        headers={"Authorization": f"Bearer {platform.admin_token}"},
    ).json()["data"]
    text = [line["msg"] for line in logs]
    assert "Instance is starting" in text
    assert any("GET / " in m or "index.html" in m or "200" in m for m in text), text

    # Delete: the service goes, and nothing of it stays running or mounted.
    services.delete_service(created.id)
    until("service gone", lambda: _gone(services, created.id))
    # An instance is STOPPED once its processes are; its sandbox's files go right after.
    until("its sandboxes removed", lambda: not _sandboxes(platform))
    images = platform.data_dir / "nodes" / "fra" / "images" / "sha256"
    assert not list(images.iterdir())  # its images went with it
    apps.delete_app(app.id)


def _gone(services: koyeb.ServicesApi, service_id: str) -> bool:
    try:
        services.get_service(service_id)
    except koyeb.exceptions.NotFoundException:
        return True
    return False


def _sandboxes(shoal: Shoal) -> list[str]:
    """Sandboxes the node still keeps (state, scratch disks) and mounts under the data dir."""
    state = shoal.data_dir / "nodes" / "fra" / "runtime" / "instances"
    kept = [str(p) for p in state.iterdir()] if state.exists() else []
    mounts = [
        line
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if str(shoal.data_dir / "nodes") in line
    ]
    return kept + mounts
