"""Bad input gets Koyeb's error body naming the field, and changes nothing."""

from __future__ import annotations

import pytest


def snapshot(api) -> tuple:
    return tuple(
        api.get(p).json()["count"]
        for p in ("/v1/apps", "/v1/services", "/v1/deployments", "/v1/secrets")
    )


def assert_error(r, status: int, field: str | None = None) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == status and isinstance(body["code"], str) and body["message"]
    if field is not None:
        assert field in [f["field"] for f in body["fields"]], body
    return body


@pytest.fixture
def app_id(org_api) -> str:
    return org_api.post("/v1/apps", json={"name": "demo"}).json()["app"]["id"]


BAD_SERVICES = [
    (
        {"name": "web", "docker": {"image": "nginx"}, "instance_types": [{"type": "gigantic"}]},
        "definition.instance_types[0].type",
    ),
    (
        {"name": "web", "docker": {"image": "nginx"}, "regions": ["atlantis"]},
        "definition.regions[0]",
    ),
    (
        {"name": "web", "docker": {"image": "nginx"}, "scalings": [{"min": 2, "max": 1}]},
        "definition.scalings[0].min",
    ),
    (
        {"name": "web", "docker": {"image": "nginx"}, "ports": [{"port": 99999}]},
        "definition.ports[0].port",
    ),
    (
        {
            "name": "web",
            "docker": {"image": "nginx"},
            "ports": [{"port": 80}],
            "routes": [{"path": "/", "port": 80}, {"path": "/", "port": 80}],
        },
        "definition.routes[1].path",
    ),
    (
        {
            "name": "web",
            "docker": {"image": "nginx"},
            "ports": [{"port": 80}],
            "routes": [{"path": "/", "port": 81}],
        },
        "definition.routes[0].port",
    ),
    (
        {
            "name": "web",
            "docker": {"image": "nginx"},
            "ports": [{"port": 80}],
            "routes": [{"path": "/api", "port": 80}, {"path": "/api/", "port": 80}],
        },
        "definition.routes[1].path",
    ),
    (  # a quote would end the edge's quoting of the path in HAProxy's configuration
        {
            "name": "web",
            "docker": {"image": "nginx"},
            "ports": [{"port": 80}],
            "routes": [{"path": "/it's", "port": 80}],
        },
        "definition.routes[0].path",
    ),
    (
        {
            "name": "web",
            "docker": {"image": "nginx"},
            "ports": [{"port": 80}],
            "health_checks": [{"tcp": {"port": 81}}],
        },
        "definition.health_checks[0].tcp.port",
    ),
    (
        {"name": "w", "type": "WORKER", "docker": {"image": "nginx"}, "ports": [{"port": 80}]},
        "definition.ports",
    ),
    ({"name": "Web!", "docker": {"image": "nginx"}}, "definition.name"),
    (
        {
            "name": "web",
            "docker": {"image": "nginx"},
            "env": [{"key": "A", "value": "{{ secret.nope }}"}],
        },
        "definition.env[0].value",
    ),
    (
        {
            "name": "web",
            "docker": {"image": "nginx"},
            "regions": ["sin"],
            "instance_types": [{"type": "free"}],
        },
        "definition.instance_types[0].type",
    ),
    ({"name": "web", "docker": {"image": "nginx"}, "ports": "80"}, "definition.ports"),
    ({"name": "web", "docker": {"image": "nginx"}, "colour": "blue"}, "definition.colour"),
    (
        {"name": "web", "docker": {"image": "nginx"}, "scalings": [{"min": "many"}]},
        "definition.scalings[0].min",
    ),
]


@pytest.mark.parametrize(("definition", "field"), BAD_SERVICES)
def test_bad_service_definitions_are_refused_and_store_nothing(org_api, app_id, definition, field):
    before = snapshot(org_api)
    events = org_api.get("/v1/app_events", params={"app_id": app_id}).json()["events"]
    assert_error(
        org_api.post("/v1/services", json={"app_id": app_id, "definition": definition}), 400, field
    )
    assert snapshot(org_api) == before
    assert org_api.get("/v1/app_events", params={"app_id": app_id}).json()["events"] == events


def test_bad_update_leaves_the_service_as_it_was(org_api, app_id):
    svc = org_api.post(
        "/v1/services",
        json={"app_id": app_id, "definition": {"name": "web", "docker": {"image": "nginx"}}},
    ).json()["service"]
    before = snapshot(org_api)
    r = org_api.put(
        f"/v1/services/{svc['id']}",
        json={"definition": {"name": "web", "docker": {"image": "nginx"}, "ports": [{"port": 0}]}},
    )
    assert_error(r, 400, "definition.ports[0].port")
    assert snapshot(org_api) == before
    after = org_api.get(f"/v1/services/{svc['id']}").json()["service"]
    assert after["latest_deployment_id"] == svc["latest_deployment_id"]
    assert after["version"] == svc["version"]


def test_an_app_holds_at_most_16_services(org_api, app_id):
    for i in range(16):
        r = org_api.post(
            "/v1/services",
            json={
                "app_id": app_id,
                "definition": {"name": f"svc-{i}", "docker": {"image": "nginx"}, "type": "WORKER"},
            },
        )
        assert r.status_code == 200, r.text
    before = snapshot(org_api)
    assert_error(
        org_api.post(
            "/v1/services",
            json={
                "app_id": app_id,
                "definition": {"name": "svc-16", "docker": {"image": "nginx"}, "type": "WORKER"},
            },
        ),
        400,
        "app_id",
    )
    assert snapshot(org_api) == before


def test_one_free_instance_per_organization(org_api, app_id):
    free = {"docker": {"image": "nginx"}, "regions": ["fra"], "instance_types": [{"type": "free"}]}
    assert (
        org_api.post(
            "/v1/services", json={"app_id": app_id, "definition": {"name": "aa", **free}}
        ).status_code
        == 200
    )
    assert_error(
        org_api.post("/v1/services", json={"app_id": app_id, "definition": {"name": "bb", **free}}),
        400,
        "definition.instance_types",
    )


def test_names_are_unique_per_scope(org_api, app_id):
    assert_error(org_api.post("/v1/apps", json={"name": "demo"}), 409, "name")
    assert_error(org_api.post("/v1/apps", json={"name": "-x-"}), 400, "name")
    assert_error(org_api.post("/v1/apps", json={}), 400, "name")
    org_api.post(
        "/v1/services",
        json={"app_id": app_id, "definition": {"name": "web", "docker": {"image": "a"}}},
    )
    assert_error(
        org_api.post(
            "/v1/services",
            json={"app_id": app_id, "definition": {"name": "web", "docker": {"image": "a"}}},
        ),
        409,
        "definition.name",
    )
    org_api.post("/v1/secrets", json={"name": "pw", "value": "x"})
    assert_error(org_api.post("/v1/secrets", json={"name": "pw", "value": "y"}), 409, "name")


def test_malformed_bodies(org_api):
    before = snapshot(org_api)
    assert_error(org_api.post("/v1/apps", content=b'{"name": '), 400, "body")
    assert_error(org_api.post("/v1/apps", content=b"[1, 2]"), 400)
    assert_error(org_api.post("/v1/apps", json={"name": 42}), 400, "name")
    assert_error(org_api.post("/v1/apps", content=b"x" * (2 * 1024 * 1024)), 413)
    chunks = (b"{" + b" " * 65536 for _ in range(40))  # no Content-Length: counted as it streams
    assert_error(org_api.post("/v1/apps", content=chunks), 413)
    assert_error(org_api.get("/v1/apps", params={"limit": "lots"}), 400, "limit")
    assert_error(org_api.get("/v1/apps", params={"limit": "101"}), 400, "limit")
    assert_error(org_api.get("/v1/apps", params={"offset": "-1"}), 400, "offset")
    assert_error(org_api.get("/v1/no-such-thing"), 404)
    assert_error(org_api.request("PATCH", "/v1/catalog/instances"), 405)
    assert snapshot(org_api) == before


def test_deployment_state_rules(org_api, app_id):
    svc = org_api.post(
        "/v1/services",
        json={"app_id": app_id, "definition": {"name": "web", "docker": {"image": "nginx"}}},
    ).json()["service"]
    dep = svc["latest_deployment_id"]
    assert org_api.post(f"/v1/deployments/{dep}/cancel").status_code == 200
    assert org_api.get(f"/v1/deployments/{dep}").json()["deployment"]["status"] == "CANCELED"
    assert_error(org_api.post(f"/v1/deployments/{dep}/cancel"), 400)
    assert_error(org_api.post(f"/v1/services/{svc['id']}/resume"), 400)
    assert_error(org_api.post(f"/v1/services/{svc['id']}/redeploy", json={"skip_build": True}), 400)
