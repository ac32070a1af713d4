"""Archives over HTTP (real `shoal up`, no agents): provision, signed upload, refusals, and
the definitions that may name one."""

from __future__ import annotations

import httpx


def definition(archive_id: str) -> dict[str, object]:
    return {
        "name": "web",
        "type": "WEB",
        "archive": {"id": archive_id},
        "ports": [{"port": 8000, "protocol": "http"}],
        "routes": [{"path": "/", "port": 8000}],
    }


def test_archive_upload_is_signed_single_and_bounded(org_api: httpx.Client):
    archive = org_api.post("/v1/archives", json={"size": "10"}).json()["archive"]
    assert archive["size"] == "10" and archive["upload_url"].startswith("http")
    url = archive["upload_url"]
    app = org_api.post("/v1/apps", json={"name": "arch"}).json()["app"]

    # Not uploaded yet: no service can build from it.
    r = org_api.post(
        "/v1/services", json={"app_id": app["id"], "definition": definition(archive["id"])}
    )
    assert r.status_code == 400
    assert r.json()["fields"][0]["field"] == "definition.archive.id"

    forged = url.rsplit("token=", 1)[0] + "token=not-a-token"
    r = httpx.put(forged, content=b"x")
    assert r.status_code == 401 and r.json()["code"] == "authentication_error"
    r = httpx.put(url, content=b"x" * 11)  # more than provisioned
    assert r.status_code == 400 and r.json()["fields"][0]["field"] == "body"
    assert httpx.put(url, content=b"0123456789").status_code == 200
    r = httpx.put(url, content=b"again")
    assert r.status_code == 400 and "already" in r.json()["message"]

    r = org_api.post(
        "/v1/services", json={"app_id": app["id"], "definition": definition(archive["id"])}
    )
    assert r.status_code == 200, r.text


def test_archive_sizes_and_ownership(org_api: httpx.Client, server):
    for size in ("0", "-1", "abc", str(64 * 1024 * 1024 + 1)):
        r = org_api.post("/v1/archives", json={"size": size})
        assert r.status_code == 400 and r.json()["fields"][0]["field"] == "size", size
    archive = org_api.post("/v1/archives", json={"size": "4"}).json()["archive"]
    assert httpx.put(archive["upload_url"], content=b"data").status_code == 200
    # Another organization cannot build from it.
    with server.client() as admin:
        app = admin.post("/v1/apps", json={"name": "other-arch"}).json()["app"]
        r = admin.post(
            "/v1/services", json={"app_id": app["id"], "definition": definition(archive["id"])}
        )
        assert r.status_code == 400
        admin.delete(f"/v1/apps/{app['id']}")
