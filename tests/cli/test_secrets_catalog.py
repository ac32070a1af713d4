"""`shoal secrets` and `shoal catalog` against a real platform."""

from __future__ import annotations

import json


def test_simple_secret_create_reveal_update_delete(cli):
    created = cli("secrets", "create", "api-key", "--value", "hunter2")
    assert created.exit_code == 0, created.output
    assert "api-key" in created.stdout and "hunter2" not in created.stdout
    assert cli("secrets", "reveal", "api-key").stdout == "hunter2\n"
    assert cli.json("secrets", "reveal", "api-key") == {"value": "hunter2"}

    updated = cli("secrets", "update", "api-key", "--value-from-stdin", input="from stdin\n")
    assert updated.exit_code == 0, updated.output
    assert cli("secrets", "reveal", "api-key").stdout == "from stdin\n"

    assert [s["name"] for s in cli.json("secrets", "list")] == ["api-key"]
    assert cli.json("secrets", "get", "api-key")["type"] == "SIMPLE"
    assert cli("secrets", "delete", "api-key").exit_code == 0
    assert cli.json("secrets", "list") == []


def test_registry_secret(cli):
    r = cli(
        "secrets",
        "create",
        "registry",
        "--registry-url",
        "registry.example.com",
        "--registry-username",
        "bot",
        "--registry-password",
        "pw",
    )
    assert r.exit_code == 0, r.output
    secret = cli.json("secrets", "get", "registry")
    assert secret["type"] == "REGISTRY"
    assert secret["private_registry"] == {"username": "bot", "url": "registry.example.com"}
    revealed = json.loads(cli("secrets", "reveal", "registry").stdout)
    assert revealed["password"] == "pw"

    cli("apps", "create", "shop")
    made = cli(
        "services",
        "create",
        "web",
        "--app",
        "shop",
        "--docker",
        "registry.example.com/app",
        "--docker-private-registry-secret",
        "registry",
    )
    assert made.exit_code == 0, made.output


def test_catalog_lists_the_18_instance_types_and_the_regions(cli):
    types = cli.json("catalog", "instances")
    assert len(types) == 18
    table = cli("catalog", "instances")
    assert table.exit_code == 0
    for t in types:
        assert t["id"] in table.stdout
    assert [r["id"] for r in cli.json("catalog", "regions")] == ["fra", "was", "sin"]
    assert "Frankfurt" in cli("catalog", "regions").stdout
