"""Usage on a controlled clock: the test is the node agent (the real node protocol, with the
agent token) and reports when the instance started and ended; /v1/usages, its details (JSON
and CSV) and `shoal usage` give those seconds and their cost at the seed's prices."""

from __future__ import annotations

import csv
import io
import time

import httpx
from tests.cli.helpers import Cli
from tests.conftest import Shoal

STARTED, ENDED = "2026-10-31T23:30:00Z", "2026-11-01T00:45:00Z"  # 1 h 15 min over two months
WINDOW = {"starting_time": "2026-10-01T00:00:00Z", "ending_time": "2026-12-01T00:00:00Z"}


def run_one_instance(shoal: Shoal, api: httpx.Client) -> tuple[str, str]:
    """A service whose one instance the test, as its node, runs from STARTED to ENDED; then
    the service is deleted (its usage stays)."""
    agent = httpx.Client(
        base_url=shoal.url,
        headers={"Authorization": f"Bearer {(shoal.data_dir / 'agent-token').read_text().strip()}"},
        timeout=30,
    )
    hello = {"name": "test-node", "region": "fra", "cpus": 2, "memory_mb": 4096}
    node = agent.post("/internal/v1/nodes", json=hello).json()["node_id"]
    app = api.post("/v1/apps", json={"name": "metered"}).json()["app"]
    body = {"app_id": app["id"], "definition": {"name": "web", "docker": {"image": "nginx"}}}
    svc = api.post("/v1/services", json=body).json()["service"]
    deadline = time.monotonic() + 30
    while not (listed := agent.get(f"/internal/v1/nodes/{node}/assignments").json()["assignments"]):
        assert time.monotonic() < deadline, "no assignment for the node"
        time.sleep(0.1)
    [a] = listed
    for report in (
        {"status": "HEALTHY", "started_at": STARTED, "address": "100.72.0.2"},
        {"status": "STOPPED", "terminated_at": ENDED},
    ):
        batch = {"instances": [{"instance_id": a["instance_id"], **report}]}
        assert agent.post(f"/internal/v1/nodes/{node}/report", json=batch).status_code == 200
    assert api.delete(f"/v1/apps/{app['id']}").status_code == 200
    return a["instance_id"], svc["id"]


def test_usage_is_the_instances_lifetime_and_outlives_the_service(shoal: Shoal, api):
    instance_id, service_id = run_one_instance(shoal, api)

    usage = api.get("/v1/usages", params=WINDOW).json()["usage"]
    periods = usage["periods"]
    assert sorted(periods) == ["2026-10", "2026-11"]
    [app] = periods["2026-10"]["apps"]
    assert app["app_name"] == "metered"
    [svc] = app["services"]
    assert (svc["service_id"], svc["service_name"]) == (service_id, "web")
    assert svc["regions"] == {"fra": {"instances": {"nano": {"duration_seconds": 1800}}}}
    [nov] = periods["2026-11"]["apps"][0]["services"]
    assert nov["regions"]["fra"]["instances"]["nano"]["duration_seconds"] == 2700

    details = api.get("/v1/usages/details", params=WINDOW).json()
    assert details["count"] == 1
    [row] = details["usage_details"]
    assert (row["instance_id"], row["duration_seconds"], row["instance_type"]) == (
        instance_id,
        4500,
        "nano",
    )
    text = api.get("/v1/usages/details", params=WINDOW, headers={"Accept": "text/csv"}).text
    [csv_row] = list(csv.DictReader(io.StringIO(text)))
    assert (csv_row["instance_id"], csv_row["duration_seconds"]) == (instance_id, "4500")

    # The CLI prices it: nano is $0.000001 a second.
    cli = Cli({"SHOAL_URL": shoal.url, "SHOAL_TOKEN": shoal.admin_token})
    rows = cli.json("usage", "--from", WINDOW["starting_time"], "--to", WINDOW["ending_time"])
    assert rows["periods"] == periods
    table = cli("usage", "--from", WINDOW["starting_time"], "--to", WINDOW["ending_time"])
    assert table.exit_code == 0, table.output
    total = [line for line in table.stdout.splitlines() if line.startswith("total")]
    assert total and total[0].split()[-2:] == ["4500", "0.004500"]


def test_bad_windows_are_refused(api):
    r = api.get("/v1/usages", params={"starting_time": "2026-11-02", "ending_time": "2026-11-01"})
    assert r.status_code == 400 and r.json()["fields"][0]["field"] == "starting_time"
    long = {"starting_time": "2020-01-01T00:00:00Z", "ending_time": "2026-01-01T00:00:00Z"}
    r = api.get("/v1/usages", params=long)
    assert r.status_code == 400 and "at most 400 days" in r.json()["message"]
    r = api.get("/v1/usages/details", params={"limit": 0})
    assert r.status_code == 400 and r.json()["fields"][0]["field"] == "limit"
