"""Request metrics through the API: what the edge sends (with the agent token) is read back
at /v1/streams/metrics and /metrics by the service's organization only."""

from __future__ import annotations

import time

import httpx
from tests.api.test_tenancy import second_org
from tests.conftest import Shoal


def service(api: httpx.Client) -> dict:
    app = api.post("/v1/apps", json={"name": "shop"}).json()["app"]
    body = {"app_id": app["id"], "definition": {"name": "web", "docker": {"image": "nginx"}}}
    return dict(api.post("/v1/services", json=body).json()["service"])


def test_edge_metrics_are_read_back_by_their_organization_only(shoal: Shoal, api):
    svc = service(api)
    agent = (shoal.data_dir / "agent-token").read_text().strip()
    now = time.time()
    samples = [
        {
            "service_id": svc["id"],
            "instance_id": inst,
            "at": now - 30 + second,
            "seconds": 1,
            "requests": 10,
            "codes": {"2xx": 9, "5xx": 1},
            "busy_ms": 50,
            "response_ms": [4, 8, 9, 12],
        }
        for second in range(3)
        for inst in ("i-1", "i-2")
    ]
    edge = f"{shoal.url}/internal/v1/edge/metrics"
    assert httpx.post(edge, json=samples).status_code == 401  # not without the agent's token
    assert api.post("/internal/v1/edge/metrics", json=samples).status_code in (401, 403)
    r = httpx.post(edge, json=samples, headers={"Authorization": f"Bearer {agent}"})
    assert r.status_code == 204, r.text

    params = {"service_id": svc["id"], "name": "HTTP_THROUGHPUT", "step": "1m"}
    got = api.get("/v1/streams/metrics", params=params)
    assert got.status_code == 200, got.text
    metrics = got.json()["metrics"]
    assert [m["labels"]["instance_id"] for m in metrics] == ["i-1", "i-2"]
    assert sum(s["value"] for s in metrics[0]["samples"]) * 60 == 30  # 30 requests
    p99 = api.get("/v1/streams/metrics", params={**params, "name": "HTTP_RESPONSE_TIME_99P"})
    assert {s["value"] for s in p99.json()["metrics"][1]["samples"]} == {9}

    text = api.get("/metrics").text
    assert "# TYPE shoal_http_requests_total counter" in text
    assert (
        f'shoal_http_requests_total{{app="shop",code="5xx",instance_id="i-2",'
        f'service="web",service_id="{svc["id"]}"}} 3.0'
    ) in text
    assert 'shoal_http_response_time_seconds{app="shop"' in text

    with shoal.client(second_org(api)) as other:
        assert other.get("/v1/streams/metrics", params=params).status_code == 404
        assert svc["id"] not in other.get("/metrics").text
    assert httpx.get(f"{shoal.url}/metrics").status_code == 401

    # CPU and memory come with the nodes' reports.
    hello = {"name": "n1", "region": "fra", "cpus": 2, "memory_mb": 4096}
    auth = {"Authorization": f"Bearer {agent}"}
    node = httpx.post(f"{shoal.url}/internal/v1/nodes", json=hello, headers=auth).json()
    used = {
        "service_id": svc["id"],
        "instance_id": "i-1",
        "at": now - 5,
        "cpu_percent": 42.5,
        "memory_bytes": 50_000_000,
        "memory_limit_bytes": 256 << 20,
    }
    r = httpx.post(
        f"{shoal.url}/internal/v1/nodes/{node['node_id']}/report",
        json={"resources": [used]},
        headers=auth,
    )
    assert r.status_code == 200, r.text
    for name, value in (("CPU_TOTAL_PERCENT", 42.5), ("MEM_RSS", 50_000_000)):
        got = api.get("/v1/streams/metrics", params={**params, "name": name}).json()["metrics"]
        assert [s["value"] for m in got for s in m["samples"]] == [value], name


def test_bad_metric_queries_are_refused(api):
    svc = service(api)
    for params, field in (
        ({"name": "HTTP_THROUGHPUT"}, "service_id"),
        ({"service_id": svc["id"], "name": "PUBLIC_DATA_TRANSFER_IN"}, "name"),
        ({"service_id": svc["id"], "name": "NOPE"}, "name"),
        ({"service_id": svc["id"], "name": "HTTP_THROUGHPUT", "step": "5d"}, "step"),
        (  # too many points
            {
                "service_id": svc["id"],
                "name": "HTTP_THROUGHPUT",
                "step": "1s",
                "start": "2026-01-01T00:00:00Z",
            },
            "step",
        ),
        (
            {
                "service_id": svc["id"],
                "name": "HTTP_THROUGHPUT",
                "start": "2026-01-02T00:00:00Z",
                "end": "2026-01-01T00:00:00",
            },
            "start",
        ),
    ):
        r = api.get("/v1/streams/metrics", params=params)
        assert r.status_code == 400, (params, r.text)
        assert r.json()["fields"][0]["field"] == field, r.text
    r = api.get("/v1/streams/metrics", params={"instance_id": "nope", "name": "HTTP_THROUGHPUT"})
    assert r.status_code == 404
