"""The edge's route table (pure): which routes, which servers, what changes need a reload."""

from __future__ import annotations

from shoal.core.definition import DeploymentDefinition
from shoal.core.edge import EdgeTable, layout, public_routes, routes_of, server_changes


def definition(routes: list[tuple[str, int]], ports: list[tuple[int, str]]) -> DeploymentDefinition:
    return DeploymentDefinition.model_validate(
        {
            "routes": [{"path": p, "port": n} for p, n in routes],
            "ports": [{"port": n, "protocol": proto} for n, proto in ports],
        }
    )


def test_public_routes_are_those_to_http_ports():
    d = definition(
        [("/", 8000), ("/grpc", 9000), ("/raw", 7000)],
        [(8000, "http"), (9000, "http2"), (7000, "tcp")],
    )
    assert public_routes(d) == [("/", 8000, "http"), ("/grpc", 9000, "http2")]
    assert public_routes(definition([], [(8000, "http")])) == []  # private: no route


def test_a_rollout_serves_old_and_new_instances_of_the_same_route():
    active = definition([("/", 8000)], [(8000, "http")])
    moved = definition([("/", 9000)], [(9000, "http")])
    routes = routes_of(
        "shop-acme.localhost",
        "svc",
        active,
        [
            ("i2", "100.72.0.6", "fra", active),
            ("i1", "100.72.0.2", "was", active),
            ("i3", "100.72.0.9", "fra", moved),
        ],
    )
    [route] = routes
    assert (route.host, route.path, route.port, route.protocol) == (
        "shop-acme.localhost",
        "/",
        8000,
        "http",
    )
    assert [(s.id, s.address, s.port, s.region) for s in route.servers] == [
        ("i1", "100.72.0.2", 8000, "was"),
        ("i2", "100.72.0.6", 8000, "fra"),
    ]  # i3's deployment serves another port: not in this route


def test_servers_change_without_a_new_layout_but_routes_do():
    d = definition([("/", 8000)], [(8000, "http")])
    one = EdgeTable(routes=routes_of("a-o.x", "svc", d, [("i1", "10.0.0.1", "fra", d)]))
    two = EdgeTable(
        routes=routes_of(
            "a-o.x", "svc", d, [("i2", "10.0.0.2", "fra", d), ("i1", "10.0.0.9", "fra", d)]
        )
    )
    assert layout(one) == layout(two)
    changes = server_changes(one, two)
    backend = one.routes[0].backend
    assert [(b, s.id) for b, s in changes.added] == [(backend, "i2")]
    assert [(b, s.address) for b, s in changes.moved] == [(backend, "10.0.0.9")]
    assert changes.removed == []
    assert server_changes(two, one).removed == [(backend, "i2")]
    other = definition([("/", 8000), ("/api", 8000)], [(8000, "http")])
    assert layout(EdgeTable(routes=routes_of("a-o.x", "svc", other, []))) != layout(one)
    assert one.fingerprint() != two.fingerprint()
