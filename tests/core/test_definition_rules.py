"""Every rule of a deployment definition, checked on the pure functions."""

from __future__ import annotations

from dataclasses import replace

import pytest

from shoal.core.defaults import complete
from shoal.core.definition import DeploymentDefinition
from shoal.core.validation import Context, check

CTX = Context(
    regions=frozenset({"fra", "was", "sin", "par"}),
    secret_names=frozenset({"db-password", "registry"}),
    registry_secret_names=frozenset({"registry"}),
)


def problems(raw: dict, ctx: Context = CTX) -> dict[str, str]:
    d = complete(DeploymentDefinition.model_validate(raw), "fra")
    return {p.field: p.description for p in check(d, ctx)}


def web(**extra) -> dict:
    return {"name": "web", "docker": {"image": "nginx:alpine"}, **extra}


def test_a_minimal_web_service_is_valid_and_gets_koyebs_defaults():
    raw = web()
    assert problems(raw) == {}
    d = complete(DeploymentDefinition.model_validate(raw), "fra")
    assert d.type == "WEB"
    assert [(p.port, p.protocol) for p in d.ports] == [(8000, "http")]
    assert [(r.path, r.port) for r in d.routes] == [("/", 8000)]
    assert d.regions == ["fra"]
    assert [(c.type, c.scopes) for c in d.instance_types] == [("nano", [])]
    assert [(s.min, s.max) for s in d.scalings] == [(1, 1)]
    [hc] = d.health_checks
    assert (hc.tcp.port, hc.grace_period, hc.interval, hc.restart_limit, hc.timeout) == (
        8000,
        5,
        60,
        3,
        5,
    )


def test_completion_does_not_touch_its_input():
    d = DeploymentDefinition.model_validate(web())
    complete(d, "fra")
    assert d.ports is None and d.health_checks is None


def test_ports_without_routes_stay_private():
    d = complete(DeploymentDefinition.model_validate(web(ports=[{"port": 3000}])), "fra")
    assert d.routes == []
    assert d.ports[0].protocol == "http"


def test_an_http_check_keeps_its_port_and_gets_defaults():
    raw = web(ports=[{"port": 80}], health_checks=[{"http": {"port": 80, "path": "/healthz"}}])
    d = complete(DeploymentDefinition.model_validate(raw), "fra")
    [hc] = d.health_checks
    assert hc.tcp is None and hc.http.method == "GET" and hc.interval == 60


def test_free_type_defaults_to_min_zero():
    d = complete(DeploymentDefinition.model_validate(web(instance_types=[{"type": "free"}])), "fra")
    assert (d.scalings[0].min, d.scalings[0].max) == (0, 1)


@pytest.mark.parametrize(
    ("raw", "field", "words"),
    [
        (web(name="Bad_Name"), "definition.name", "lowercase"),
        (web(name="x"), "definition.name", "between"),
        ({"name": "web"}, "definition", "exactly one source"),
        (web(git={"repository": "file:///x"}), "definition", "exactly one source"),
        (web(docker={"image": ""}), "definition.docker.image", "image reference"),
        (
            web(docker={"image": "a", "image_registry_secret": "db-password"}),
            "definition.docker.image_registry_secret",
            "no registry secret",
        ),
        (web(regions=["mars"]), "definition.regions[0]", "unknown region"),
        (web(regions=["fra", "fra"]), "definition.regions", "twice"),
        (
            web(instance_types=[{"type": "huge"}]),
            "definition.instance_types[0].type",
            "unknown instance type",
        ),
        (
            web(regions=["par"], instance_types=[{"type": "eco-small"}]),
            "definition.instance_types[0].type",
            "offered only",
        ),
        (
            web(regions=["sin"], instance_types=[{"type": "free"}]),
            "definition.instance_types[0].type",
            "offered only",
        ),
        (web(scalings=[{"min": 3, "max": 2}]), "definition.scalings[0].min", "must not exceed"),
        (web(scalings=[{"min": 0, "max": 21}]), "definition.scalings[0].max", "between 0 and 20"),
        (
            web(scalings=[{"scopes": ["region:was"], "min": 1, "max": 1}]),
            "definition.scalings[0].scopes[0]",
            "not in the service's regions",
        ),
        (
            web(scalings=[{"scopes": ["fra"], "min": 1, "max": 1}]),
            "definition.scalings[0].scopes[0]",
            "region:<id>",
        ),
        (web(ports=[{"port": 0}]), "definition.ports[0].port", "between 1 and 65535"),
        (web(ports=[{"port": 65536}]), "definition.ports[0].port", "between 1 and 65535"),
        (web(ports=[{"port": 80, "protocol": "udp"}]), "definition.ports[0].protocol", "one of"),
        (web(ports=[{"port": 80}, {"port": 80}]), "definition.ports[1].port", "exposed twice"),
        (
            web(
                ports=[{"port": 80}], routes=[{"path": "/", "port": 80}, {"path": "/", "port": 80}]
            ),
            "definition.routes[1].path",
            "routed twice",
        ),
        (
            web(ports=[{"port": 80}], routes=[{"path": "api", "port": 80}]),
            "definition.routes[0].path",
            "start with /",
        ),
        (
            web(ports=[{"port": 80}], routes=[{"path": "/", "port": 81}]),
            "definition.routes[0].port",
            "not exposed",
        ),
        (
            web(ports=[{"port": 80, "protocol": "tcp"}], routes=[{"path": "/", "port": 80}]),
            "definition.routes[0].port",
            "speaks tcp",
        ),
        (
            web(ports=[{"port": 80}], health_checks=[{"tcp": {"port": 81}}]),
            "definition.health_checks[0].tcp.port",
            "not exposed",
        ),
        (
            web(ports=[{"port": 80}], health_checks=[{"tcp": {"port": 80}, "interval": 0}]),
            "definition.health_checks[0].interval",
            "between 1 and 300",
        ),
        (
            web(ports=[{"port": 80}], health_checks=[{"tcp": {"port": 80}, "http": {"port": 80}}]),
            "definition.health_checks[0]",
            "exactly one of tcp and http",
        ),
        (
            web(ports=[{"port": 80}], health_checks=[{"http": {"port": 80, "method": "BREW"}}]),
            "definition.health_checks[0].http.method",
            "one of",
        ),
        (web(type="WORKER", ports=[{"port": 80}]), "definition.ports", "worker"),
        (web(type="WORKER", routes=[{"path": "/", "port": 80}]), "definition.routes", "worker"),
        (
            web(type="WORKER", instance_types=[{"type": "free"}]),
            "definition.instance_types[0].type",
            "web services only",
        ),
        (web(env=[{"key": "1X", "value": "a"}]), "definition.env[0].key", "letter"),
        (
            web(env=[{"key": "A", "value": "{{ secret.nope }}"}]),
            "definition.env[0].value",
            "no secret named",
        ),
        (web(env=[{"key": "A", "secret": "nope"}]), "definition.env[0].secret", "no secret named"),
        (
            web(env=[{"key": "A", "value": "1"}, {"key": "A", "value": "2"}]),
            "definition.env[1].key",
            "twice",
        ),
        (
            web(scalings=[{"min": 1, "max": 2, "targets": [{"sleep_idle_delay": {"value": 60}}]}]),
            "definition.scalings[0].targets[0].sleep_idle_delay",
            "min is 0",
        ),
        (
            web(scalings=[{"min": 1, "max": 2, "targets": [{"average_cpu": {"value": 150}}]}]),
            "definition.scalings[0].targets[0].average_cpu.value",
            "percentage",
        ),
        (
            web(scalings=[{"min": 1, "max": 2, "targets": [{}]}]),
            "definition.scalings[0].targets[0]",
            "exactly one target",
        ),
        (web(volumes=[{"id": "v", "path": "/data"}]), "definition.volumes", "not supported"),
    ],
)
def test_each_rule_names_its_field(raw, field, words):
    found = problems(raw)
    assert field in found, found
    assert words in found[field]


def test_secrets_referenced_by_value_or_field_are_accepted():
    raw = web(
        env=[
            {"key": "A", "value": "postgres://u:{{ secret.db-password }}@db"},
            {"key": "B", "secret": "db-password"},
        ]
    )
    assert problems(raw) == {}


def test_region_scoped_env_may_override_the_global_one():
    raw = web(
        regions=["fra", "was"],
        env=[{"key": "A", "value": "1"}, {"key": "A", "value": "2", "scopes": ["region:was"]}],
    )
    assert problems(raw) == {}


def test_one_free_instance_per_organization():
    raw = web(regions=["fra"], instance_types=[{"type": "free"}])
    assert problems(raw) == {}
    taken = Context(
        CTX.regions, CTX.secret_names, CTX.registry_secret_names, free_instances_elsewhere=1
    )
    assert "only one free instance" in problems(raw, taken)["definition.instance_types"]
    two_regions = web(regions=["fra", "was"], instance_types=[{"type": "free"}])
    assert "only one free instance" in problems(two_regions)["definition.instance_types"]


def test_every_problem_is_reported_at_once():
    raw = web(name="B", regions=["mars"], ports=[{"port": 0}])
    assert len(problems(raw)) >= 3


@pytest.mark.parametrize(
    ("repository", "local", "words"),
    [
        ("/srv/repo", False, "off on this platform"),
        ("file:///srv/repo", False, "off on this platform"),
        ("http://127.0.0.1:8130/x.git", True, "loopback"),
        ("http://169.254.169.254/latest", True, "link-local"),
        ("https://localhost/x.git", True, "loopback"),
        ("not a repository", True, "must be a URL"),
    ],
)
def test_git_repositories_that_would_reach_into_the_node(repository, local, words):
    ctx = replace(CTX, local_repositories=local)
    raw = {**web(), "docker": None, "git": {"repository": repository}}
    assert words in problems(raw, ctx)["definition.git.repository"]


def test_git_sources_that_are_fine():
    ctx = replace(CTX, local_repositories=True)
    for repository in ("/srv/repo", "github.com/org/app", "git@github.com:org/app.git"):
        raw = {**web(), "docker": None, "git": {"repository": repository, "sha": "abc123f"}}
        assert problems(raw, ctx) == {}, repository
    raw = {
        **web(),
        "docker": None,
        "git": {"repository": "github.com/o/a", "sha": "--upload-pack=x"},
    }
    assert "commit id" in problems(raw, ctx)["definition.git.sha"]
