"""How service flags change a definition (pure): Koyeb's CLI rules."""

from __future__ import annotations

import pytest
import typer

from shoal.cli.service_flags import Flags, Kind, apply, parse_check, parse_route
from shoal.core.definition import DefinitionType, DeploymentDefinition


def _made(**flags) -> DeploymentDefinition:
    return apply(DeploymentDefinition(name="web"), Flags(**flags))


def test_a_single_http_port_gets_the_root_route():
    d = _made(ports=["3000"])
    assert [(p.port, p.protocol) for p in d.ports] == [(3000, "http")]
    assert [(r.path, r.port) for r in d.routes] == [("/", 3000)]


def test_tcp_ports_several_ports_and_given_routes_get_no_default_route():
    assert not _made(ports=["5432:tcp"]).routes
    assert not _made(ports=["3000", "3001"]).routes
    d = _made(ports=["3000"], routes=["/api"])
    assert [(r.path, r.port) for r in d.routes] == [("/api", 3000)]


def test_no_flags_change_nothing():
    base = _made(docker="nginx", ports=["3000"], env=["A=1"])
    assert apply(base, Flags()) == base


def test_list_flags_add_replace_and_remove_by_key():
    base = _made(docker="nginx", env=["A=1", "B=2"], regions=["fra"])
    d = apply(base, Flags(env=["A=10", "!B", "C=3"], regions=["was", "!fra"]))
    assert [(e.key, e.value) for e in d.env] == [("A", "10"), ("C", "3")]
    assert d.regions == ["was"]


def test_removing_a_port_takes_its_routes_and_checks():
    base = _made(
        docker="nginx",
        ports=["3000", "3001"],
        routes=["/:3000", "/b:3001"],
        checks=["3000:tcp", "3001:http:/up"],
    )
    d = apply(base, Flags(ports=["!3001"]))
    assert [r.path for r in d.routes] == ["/"]
    assert [c.tcp.port for c in d.health_checks if c.tcp] == [3000]
    assert not [c for c in d.health_checks if c.http]


def test_sources_replace_each_other():
    git = _made(git="github.com/a/b")
    assert git.git.branch == "main"
    docker = apply(git, Flags(docker="nginx", docker_args=["-g", "daemon off;"]))
    assert docker.git is None
    assert docker.docker.image == "nginx" and docker.docker.args == ["-g", "daemon off;"]
    with pytest.raises(typer.BadParameter):
        _made(docker="nginx", git="github.com/a/b")


def test_type_scale_and_instance_type():
    d = _made(type=Kind.WORKER, instance_type="eco-small", min_scale=0, max_scale=2)
    assert d.type == DefinitionType.WORKER
    assert [t.type for t in d.instance_types] == ["eco-small"]
    assert [(s.min, s.max) for s in d.scalings] == [(0, 2)]
    more = apply(d, Flags(max_scale=5))
    assert [(s.min, s.max) for s in more.scalings] == [(0, 5)]


def test_check_and_route_syntax():
    assert parse_check("8000").tcp.port == 8000
    assert parse_check("8000:http").http.path == "/"
    assert parse_check("8000:http:/health").http.path == "/health"
    for bad in ("x:tcp", "80:udp", "80:tcp:/p"):
        with pytest.raises(typer.BadParameter):
            parse_check(bad)
    route = parse_route("/api:9000", 8000)
    assert (route.path, route.port) == ("/api", 9000)
    assert parse_route("/api", 8000).port == 8000
