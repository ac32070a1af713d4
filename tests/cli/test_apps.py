"""`shoal apps ...` against a real platform, in table, JSON and YAML."""

from __future__ import annotations

import yaml
from tests.cli.helpers import eventually_status


def test_create_list_get_in_table_and_json(cli, api, tenant):
    r = cli("apps", "create", "shop")
    assert r.exit_code == 0, r.output
    assert "shop" in r.stdout
    assert f"shop-{tenant.org}.localhost" in r.stdout

    listed = cli("apps", "list")
    assert listed.exit_code == 0
    assert "NAME" in listed.stdout and "shop" in listed.stdout

    raw = api.get("/v1/apps/shop").json()["app"]
    got = cli.json("apps", "get", "shop")
    assert got["id"] == raw["id"]
    assert got["domains"][0]["name"] == f"shop-{tenant.org}.localhost"
    assert [a["id"] for a in cli.json("apps", "list")] == [raw["id"]]

    as_yaml = cli("-o", "yaml", "apps", "get", raw["id"][:8])
    assert yaml.safe_load(as_yaml.stdout)["name"] == "shop"


def test_update_renames(cli):
    cli("apps", "create", "old-name")
    renamed = cli.json("apps", "update", "old-name", "--name", "new-name")
    assert renamed["name"] == "new-name"
    assert cli("apps", "get", "old-name").exit_code == 1


def test_delete_with_wait_ends_when_the_app_is_gone(cli, api):
    cli("apps", "create", "short-lived")
    cli("services", "create", "web", "--app", "short-lived", "--docker", "nginx")
    r = cli("apps", "delete", "short-lived", "--wait", "--wait-timeout", "120")
    assert r.exit_code == 0, r.output
    assert api.get("/v1/apps/short-lived").status_code == 404


def test_pause_and_resume_reach_the_services(cli, api):
    cli("apps", "create", "sleepy")
    service = cli.json("services", "create", "web", "--app", "sleepy", "--docker", "nginx")
    assert cli("apps", "pause", "sleepy").exit_code == 0
    eventually_status(api, f"/v1/services/{service['id']}", "PAUSED")
    assert cli("apps", "resume", "sleepy").exit_code == 0
    # Resuming deploys the service again.
    assert len(cli.json("deployments", "list", "--service", "sleepy/web")) == 2
