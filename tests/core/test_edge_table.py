"""The edge's route table (pure): which routes, which servers, what changes need a reload."""

from __future__ import annotations

from shoal.core.catalog import nearest_first
from shoal.core.definition import DeploymentDefinition
from shoal.core.edge import (
    EdgeRoute,
    EdgeServer,
    EdgeTable,
    choices,
    layout,
    public_routes,
    routes_of,
    server_changes,
    tcp_routes_of,
)


def definition(
    routes: list[tuple[str, int]], ports: list[tuple[int, str]], regions: list[str] | None = None
) -> DeploymentDefinition:
    return DeploymentDefinition.model_validate(
        {
            "routes": [{"path": p, "port": n} for p, n in routes],
            "ports": [{"port": n, "protocol": proto} for n, proto in ports],
            "regions": regions or ["fra"],
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


def test_sleeping_instances_are_listed_apart_with_their_waker_the_closest_first():
    active = definition([("/", 8000)], [(8000, "http")], ["fra", "sin"])
    [route] = routes_of(
        "shop-acme.localhost",
        "svc",
        active,
        [("i1", "100.72.0.2", "fra", active)],
        [
            (("i2", "100.72.0.3", "fra", active), "/run/a/waker.sock"),
            (("i3", "100.72.0.4", "sin", active), "/run/b/waker.sock"),
        ],
    )
    assert [s.id for s in route.servers] == ["i1"]  # sleeping ones are not served
    assert [(s.id, s.waker) for s in route.asleep] == [
        ("i2", "/run/a/waker.sock"),
        ("i3", "/run/b/waker.sock"),
    ]
    assert [s.id for s in route.asleep_near("sin")] == ["i3", "i2"]
    assert [s.id for s in route.asleep_near("par")] == ["i2", "i3"]  # Paris: Frankfurt first
    # Frozen instances never change HAProxy's layout or servers.
    bare = route.model_copy(update={"asleep": ()})
    assert layout(EdgeTable(routes=[route])) == layout(EdgeTable(routes=[bare]))
    changes = server_changes(EdgeTable(routes=[bare]), EdgeTable(routes=[route]))
    assert (changes.added, changes.removed, changes.moved) == ([], [], [])


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
    backend = one.routes[0].backend("fra")
    assert [(b, s.id) for b, s in changes.added] == [(backend, "i2")]
    assert [(b, s.address) for b, s in changes.moved] == [(backend, "10.0.0.9")]
    assert changes.removed == []
    assert server_changes(two, one).removed == [(backend, "i2")]
    other = definition([("/", 8000), ("/api", 8000)], [(8000, "http")])
    assert layout(EdgeTable(routes=routes_of("a-o.x", "svc", other, []))) != layout(one)
    assert one.fingerprint() != two.fingerprint()


def test_regions_nearest_first():
    assert nearest_first("fra", ["sin", "was", "par", "fra"]) == ["fra", "par", "was", "sin"]
    assert nearest_first("sin", ["fra", "was"]) == ["fra", "was"]
    assert nearest_first("tyo", ["was", "sfo"]) == ["sfo", "was"]
    assert nearest_first("fra", ["nowhere", "was"]) == ["was", "nowhere"]  # unknown: last


def server(inst: str, region: str) -> EdgeServer:
    return EdgeServer(id=inst, address="10.0.0.1", port=8000, region=region)


def test_clients_go_to_the_closest_region_that_has_a_healthy_instance():
    route = EdgeRoute(
        host="a-o.x",
        path="/",
        service_id="svc",
        port=8000,
        protocol="http",
        regions=("fra", "was"),
        servers=(server("i1", "fra"), server("i2", "was"), server("i3", "was")),
    )
    fra, was = route.backend("fra"), route.backend("was")
    assert set(route.pools()) == {"fra", "was"} and len(route.pools()["was"]) == 2
    picked = choices(EdgeTable(routes=[route]), ["fra", "par", "was", "sfo", "sin"])
    assert picked == {
        ("fra", "a-o.x", "/"): fra,
        ("par", "a-o.x", "/"): fra,
        ("was", "a-o.x", "/"): was,
        ("sfo", "a-o.x", "/"): was,
        ("sin", "a-o.x", "/"): fra,  # Singapore is closer to Frankfurt than to Washington
    }
    # Frankfurt has no healthy instance: everyone goes to Washington, and back again later.
    without_fra = route.model_copy(update={"servers": route.servers[1:]})
    assert set(choices(EdgeTable(routes=[without_fra]), ["fra", "sin"]).values()) == {was}
    # None anywhere: each client's closest pool, which answers 503.
    empty = route.model_copy(update={"servers": ()})
    assert choices(EdgeTable(routes=[empty]), ["par", "sfo"]) == {
        ("par", "a-o.x", "/"): fra,
        ("sfo", "a-o.x", "/"): was,
    }
    # Pools (backends) are the regions of the service: emptying one changes no layout.
    tables = [EdgeTable(routes=[r]) for r in (route, without_fra, empty)]
    assert len({layout(t) for t in tables}) == 1 and len(layout(tables[0])) == 2
    changes = server_changes(tables[0], tables[1])
    assert changes.removed == [(fra, "i1")] and not changes.added


def test_a_rollout_to_other_regions_keeps_the_old_regions_pools_while_they_serve():
    new = definition([("/", 8000)], [(8000, "http")], ["was"])
    [route] = routes_of("a-o.x", "svc", new, [("i1", "10.0.0.1", "fra", new)])
    assert list(route.pools()) == ["was", "fra"]
    assert choices(EdgeTable(routes=[route]), ["was"]) == {
        ("was", "a-o.x", "/"): route.backend("fra")
    }


def test_proxy_ports_get_their_public_port_and_the_instances_exposing_them():
    d = DeploymentDefinition.model_validate(
        {
            "ports": [{"port": 8000, "protocol": "http"}, {"port": 7000, "protocol": "tcp"}],
            "proxy_ports": [{"port": 7000, "protocol": "tcp"}],
        }
    )
    older = DeploymentDefinition.model_validate({"ports": [{"port": 8000}]})
    instances = [("i1", "10.0.0.1", "fra", d), ("i0", "10.0.0.5", "was", older)]
    [tcp] = tcp_routes_of("svc", d, instances, {("svc", 7000): 20001})
    assert (tcp.public_port, tcp.port, tcp.backend) == (20001, 7000, "t-20001")
    assert [s.id for s in tcp.servers] == ["i1"]  # i0's deployment does not expose 7000
    assert tcp_routes_of("svc", d, instances, {}) == []  # no public port yet
    with_tcp = EdgeTable(tcp=[tcp])
    assert layout(with_tcp) != layout(EdgeTable())
    gone = EdgeTable(tcp=[tcp.model_copy(update={"servers": ()})])
    assert layout(gone) == layout(with_tcp)
    assert server_changes(with_tcp, gone).removed == [("t-20001", "i1")]
