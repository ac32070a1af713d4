"""One organization never sees or reaches another's resources; tokens are stored hashed."""

from __future__ import annotations

import sqlite3
import uuid

import httpx
import pytest
from tests.conftest import Shoal


def second_org(api) -> str:
    org = api.post("/v1/organizations", json={"name": "other"})
    assert org.status_code == 200, org.text
    org_id = org.json()["organization"]["id"]
    cred = api.post(
        "/v1/credentials", json={"name": "ci", "type": "ORGANIZATION", "organization_id": org_id}
    )
    assert cred.status_code == 200, cred.text
    token = cred.json()["credential"]["token"]
    assert token.startswith("shoal_")
    return token


def test_another_organization_sees_nothing_and_reaches_nothing(shoal: Shoal, api):
    app = api.post("/v1/apps", json={"name": "mine"}).json()["app"]
    secret = api.post("/v1/secrets", json={"name": "pw", "value": "hunter2"}).json()["secret"]
    svc = api.post(
        "/v1/services",
        json={"app_id": app["id"], "definition": {"name": "web", "docker": {"image": "nginx"}}},
    ).json()["service"]
    dep_id = svc["latest_deployment_id"]

    with shoal.client(second_org(api)) as other:
        assert other.get("/v1/apps").json()["count"] == 0
        assert other.get("/v1/services").json()["count"] == 0
        assert other.get("/v1/deployments").json()["count"] == 0
        assert other.get("/v1/secrets").json()["count"] == 0
        assert (
            other.get("/v1/service_events", params={"service_id": svc["id"]}).json()["events"] == []
        )
        for path in (
            f"/v1/apps/{app['id']}",
            "/v1/apps/mine",
            f"/v1/apps/{app['id'][:8]}",
            f"/v1/services/{svc['id']}",
            "/v1/services/mine/web",
            f"/v1/deployments/{dep_id}",
            f"/v1/secrets/{secret['id']}",
        ):
            r = other.get(path)
            assert r.status_code == 404, path
            assert r.json()["code"] == "not_found"
        for method, path in (
            ("POST", f"/v1/secrets/{secret['id']}/reveal"),
            ("DELETE", f"/v1/apps/{app['id']}"),
            ("POST", f"/v1/services/{svc['id']}/pause"),
            ("POST", f"/v1/deployments/{dep_id}/cancel"),
        ):
            assert other.request(method, path).status_code == 404, path
        # Its own app of the same name is its own.
        assert other.post("/v1/apps", json={"name": "mine"}).status_code == 200
        # A service cannot be created in someone else's app.
        r = other.post(
            "/v1/services",
            json={"app_id": app["id"], "definition": {"name": "web", "docker": {"image": "nginx"}}},
        )
        assert r.status_code == 404

    # Nothing of ours was touched.
    assert api.get(f"/v1/apps/{app['id']}").json()["app"]["name"] == "mine"
    assert api.post(f"/v1/secrets/{secret['id']}/reveal").json() == {"value": "hunter2"}
    assert api.get(f"/v1/services/{svc['id']}").json()["service"]["status"] == "STARTING"


def test_credentials_only_for_organizations_you_belong_to(shoal: Shoal, api):
    r = api.post("/v1/credentials", json={"name": "x", "organization_id": str(uuid.uuid4())})
    assert r.status_code == 403
    assert r.json()["code"] == "authorization_required"


def test_deleted_credential_stops_working(shoal: Shoal, api):
    cred = api.post("/v1/credentials", json={"name": "temp"}).json()["credential"]
    with shoal.client(cred["token"]) as c:
        assert c.get("/v1/apps").status_code == 200
        assert api.delete(f"/v1/credentials/{cred['id']}").status_code == 200
        assert c.get("/v1/apps").status_code == 401


@pytest.mark.parametrize("backend", ["sqlite"])
def test_tokens_and_secrets_are_not_stored_in_clear(shoal: Shoal, api):
    api.post("/v1/secrets", json={"name": "pw", "value": "correct-horse-battery"})
    raw = (shoal.data_dir / "shoal.db").read_bytes()
    wal = shoal.data_dir / "shoal.db-wal"
    raw += wal.read_bytes() if wal.exists() else b""
    assert shoal.admin_token.encode() not in raw
    assert b"correct-horse-battery" not in raw
    with sqlite3.connect(shoal.data_dir / "shoal.db") as db:
        [(kind,)] = db.execute("select type from secrets").fetchall()
    assert kind == "SIMPLE"
    assert (shoal.data_dir / "admin-token").stat().st_mode & 0o777 == 0o600
    assert b"correct-horse-battery" not in shoal.log.read_bytes()


def test_an_app_domain_belongs_to_one_organization(shoal: Shoal, api):
    """Domains are <app>-<org>: app "ab-x" of org "yy" and app "ab" of org "x-yy" would share
    ab-x-yy.<domain>; the second one is refused."""

    def org_client(name: str) -> httpx.Client:
        org_id = api.post("/v1/organizations", json={"name": name}).json()["organization"]["id"]
        cred = api.post("/v1/credentials", json={"name": "t", "organization_id": org_id})
        return shoal.client(cred.json()["credential"]["token"])

    with org_client("yy") as y, org_client("x-yy") as xy:
        assert y.post("/v1/apps", json={"name": "ab-x"}).status_code == 200
        r = xy.post("/v1/apps", json={"name": "ab"})
        assert r.status_code == 409, r.text
        assert r.json()["fields"][0]["field"] == "name"
        assert xy.get("/v1/apps").json()["count"] == 0
        assert xy.post("/v1/apps", json={"name": "abc"}).status_code == 200
