"""`shoal services`, `deployments` and `instances` against a real platform."""

from __future__ import annotations

import time


def _latest_definition(api, service_id: str) -> dict:
    service = api.get(f"/v1/services/{service_id}").json()["service"]
    deployment = api.get(f"/v1/deployments/{service['latest_deployment_id']}").json()
    return deployment["deployment"]["definition"]


def until(check, timeout: float = 30.0):
    """Poll `check` until it returns something truthy (the control loop acts in the background)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_create_with_flags_produces_the_expected_definition(cli, api):
    cli("apps", "create", "shop")
    assert cli("secrets", "create", "db-pass", "--value", "s3cret").exit_code == 0
    r = cli(
        "services",
        "create",
        "api",
        "--app",
        "shop",
        "--docker",
        "docker.io/library/python:3.11-slim",
        "--docker-command",
        "python",
        "--docker-args",
        "-m",
        "--docker-args",
        "http.server",
        "--docker-args",
        "8000",
        "--ports",
        "8000:http",
        "--env",
        "MODE=prod",
        "--env",
        "DB={{ secret.db-pass }}",
        "--regions",
        "fra",
        "--regions",
        "was",
        "--instance-type",
        "small",
        "--min-scale",
        "1",
        "--max-scale",
        "3",
        "--checks",
        "8000:http:/healthz",
    )
    assert r.exit_code == 0, r.output
    assert "api" in r.stdout
    service = cli.json("services", "get", "shop/api")
    d = _latest_definition(api, service["id"])
    assert d["docker"]["image"] == "docker.io/library/python:3.11-slim"
    assert d["docker"]["command"] == "python"
    assert d["docker"]["args"] == ["-m", "http.server", "8000"]
    assert d["ports"] == [{"port": 8000, "protocol": "http"}]
    # Koyeb's CLI rule: a single http port without a route is routed at `/`.
    assert [(r["path"], r["port"]) for r in d["routes"]] == [("/", 8000)]
    assert [(e["key"], e["value"]) for e in d["env"]] == [
        ("MODE", "prod"),
        ("DB", "{{ secret.db-pass }}"),
    ]
    assert d["regions"] == ["fra", "was"]
    assert [t["type"] for t in d["instance_types"]] == ["small"]
    assert [(s["min"], s["max"]) for s in d["scalings"]] == [(1, 3)]
    checks = [(c["http"]["port"], c["http"]["path"]) for c in d["health_checks"]]
    assert checks == [(8000, "/healthz")]


def test_a_worker_from_git(cli, api):
    cli("apps", "create", "jobs")
    r = cli(
        "services",
        "create",
        "cron",
        "--app",
        "jobs",
        "--type",
        "worker",
        "--git",
        "github.com/example/jobs",
    )
    assert r.exit_code == 0, r.output
    service = cli.json("services", "get", "jobs/cron")
    d = _latest_definition(api, service["id"])
    assert d["type"] == "WORKER"
    assert d["git"]["repository"] == "github.com/example/jobs"
    assert d["git"]["branch"] == "main"
    assert d["ports"] == [] and d["routes"] == []


def test_update_builds_on_the_latest_definition_as_a_second_deployment(cli, api):
    cli("apps", "create", "shop")
    cli(
        "services",
        "create",
        "web",
        "--app",
        "shop",
        "--docker",
        "nginx",
        "--ports",
        "3000:http",
        "--env",
        "A=1",
        "--env",
        "B=2",
    )
    r = cli(
        "services",
        "update",
        "shop/web",
        "--env",
        "A=10",
        "--env",
        "!B",
        "--env",
        "C=3",
        "--ports",
        "8080:http",
        "--ports",
        "!3000",
    )
    assert r.exit_code == 0, r.output
    service = cli.json("services", "get", "shop/web")
    deployments = cli.json("deployments", "list", "--service", service["id"])
    assert len(deployments) == 2
    d = _latest_definition(api, service["id"])
    assert d["docker"]["image"] == "nginx"
    assert [(e["key"], e["value"]) for e in d["env"]] == [("A", "10"), ("C", "3")]
    assert d["ports"] == [{"port": 8080, "protocol": "http"}]
    assert [(r["path"], r["port"]) for r in d["routes"]] == [("/", 8080)]
    assert [c["tcp"]["port"] for c in d["health_checks"]] == [8080]


def test_list_get_by_short_id_and_redeploy(cli):
    cli("apps", "create", "shop")
    created = cli.json("services", "create", "web", "--app", "shop", "--docker", "nginx")
    assert [s["id"] for s in cli.json("services", "list", "--app", "shop")] == [created["id"]]
    assert cli.json("services", "get", created["id"][:8])["name"] == "web"
    listed = cli("services", "list")
    assert "web" in listed.stdout and "STATUS" in listed.stdout

    redeployed = cli.json("services", "redeploy", "shop/web")
    assert redeployed["service_id"] == created["id"]
    assert len(cli.json("deployments", "list", "--app", "shop")) == 2


def test_deployments_get_and_cancel(cli):
    cli("apps", "create", "shop")
    service = cli.json("services", "create", "web", "--app", "shop", "--docker", "nginx")
    dep_id = service["latest_deployment_id"]
    # Without a node agent the deployment waits for a node: PENDING, then SCHEDULED.
    assert cli.json("deployments", "get", dep_id)["status"] in ("PENDING", "SCHEDULED")
    assert cli("deployments", "cancel", dep_id).exit_code == 0
    assert cli.json("deployments", "get", dep_id)["status"] == "CANCELED"
    again = cli("deployments", "cancel", dep_id)
    assert again.exit_code == 1
    assert "can be canceled" in again.stderr


def test_instances_wait_for_a_node_where_no_agent_runs(cli):
    cli("apps", "create", "shop")
    cli("services", "create", "web", "--app", "shop", "--docker", "nginx")
    [instance] = until(lambda: cli.json("instances", "list", "--service", "shop/web"))
    assert instance["status"] == "ALLOCATING"
    assert instance["region"] == "fra"
    got = until(lambda: (i := cli.json("instances", "get", instance["id"]))["messages"] and i)
    assert got["messages"] == ["No node is available in region fra"]
    assert cli("instances", "get", "00000000").exit_code == 1


def test_pause_resume_and_delete_with_wait(cli):
    cli("apps", "create", "shop")
    service = cli.json("services", "create", "web", "--app", "shop", "--docker", "nginx")
    r = cli("services", "pause", "shop/web", "--wait", "--wait-timeout", "120")
    assert r.exit_code == 0, r.output
    assert cli.json("services", "get", "shop/web")["status"] == "PAUSED"

    assert cli("services", "resume", "shop/web").exit_code == 0
    # RESUMING until the resume deployment settles, which needs the runtime.
    assert cli.json("services", "get", "shop/web")["status"] == "RESUMING"

    r = cli("services", "delete", "shop/web", "--wait", "--wait-timeout", "120")
    assert r.exit_code == 0, r.output
    assert cli("services", "get", service["id"]).exit_code == 1
