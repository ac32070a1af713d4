"""The platform starts on both backends and answers authenticated requests only."""

from __future__ import annotations


def test_lists_apps_with_token_and_refuses_without(shoal, api):
    r = api.get("/v1/apps")
    assert r.status_code == 200
    assert r.json() == {"apps": [], "limit": 10, "offset": 0, "count": 0, "has_next": False}
    anon = api.get("/v1/apps", headers={"Authorization": ""})
    assert anon.status_code == 401
    assert anon.json()["code"] == "authentication_error"
    bad = api.get("/v1/apps", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
