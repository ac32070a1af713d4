"""SIGKILL `shoal up` in the middle of a stream of writes: everything acknowledged survives.

Writers keep creating apps and services on several connections; the process is killed while
requests are in flight, started again on the same data dir (and database), and every write
that got a 200 must be there, whole (a service with its deployment and regional deployments).
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import httpx
from tests.conftest import start_shoal


def _writer(
    url: str, token: str, prefix: str, acked: list[tuple[str, str, str]], stop: threading.Event
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=10) as c:
        i = 0
        while not stop.is_set():
            i += 1
            name = f"{prefix}-{i}"
            try:
                app = c.post("/v1/apps", json={"name": name})
                if app.status_code != 200:
                    continue
                app_id = app.json()["app"]["id"]
                acked.append(("app", app_id, name))
                svc = c.post(
                    "/v1/services",
                    json={
                        "app_id": app_id,
                        "definition": {
                            "name": "web",
                            "docker": {"image": "nginx:alpine"},
                            "regions": ["fra", "was"],
                        },
                    },
                )
                if svc.status_code == 200:
                    acked.append(("service", svc.json()["service"]["id"], name))
            except httpx.TransportError:
                return  # the server died under us: what was acknowledged is recorded


def test_acknowledged_writes_survive_sigkill(tmp_path: Path, database_url: str):
    data = tmp_path / "data"
    first = start_shoal(data, database_url)
    token = first.admin_token
    acked: list[tuple[str, str, str]] = []
    stop = threading.Event()
    threads = [
        threading.Thread(target=_writer, args=(first.url, token, f"w{n}", acked, stop))
        for n in range(4)
    ]
    for t in threads:
        t.start()
    # Kill once a fair number of writes is in; polling the list, not sleeping on a guess.
    ready = threading.Event()
    while not ready.wait(0.01):
        if len(acked) >= 40:
            ready.set()
    first.stop(signal.SIGKILL)
    stop.set()
    for t in threads:
        t.join()
    assert first.proc.returncode == -signal.SIGKILL

    second = start_shoal(data, database_url)
    try:
        with second.client(token) as c:
            for kind, ident, name in list(acked):
                if kind == "app":
                    r = c.get(f"/v1/apps/{ident}")
                    assert r.status_code == 200, (name, r.text)
                    assert r.json()["app"]["name"] == name
                else:
                    svc = c.get(f"/v1/services/{ident}")
                    assert svc.status_code == 200, (name, svc.text)
                    dep_id = svc.json()["service"]["latest_deployment_id"]
                    dep = c.get(f"/v1/deployments/{dep_id}")
                    assert dep.status_code == 200
                    assert dep.json()["deployment"]["definition"]["regions"] == ["fra", "was"]
                    rds = c.get("/v1/regional_deployments", params={"deployment_id": dep_id})
                    assert sorted(r["region"] for r in rds.json()["regional_deployments"]) == [
                        "fra",
                        "was",
                    ]
            # The restarted platform takes writes again.
            assert c.post("/v1/apps", json={"name": "after-restart"}).status_code == 200
    finally:
        second.stop()
