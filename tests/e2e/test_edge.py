"""The edge, end to end: `shoal up` with its node agent and its edge (HAProxy, driven through
its runtime API), instances in real sandboxes answering through it.

One app, two web services on its domain: `front` at `/`, `api` at `/api` (2 instances), two
more in other regions for the region tests, and two built from a local repository for the
WebSocket and h2c tests. The platform runs node agents for Frankfurt
and Washington; its edge is in Frankfurt. Each instance runs busybox httpd with a CGI script
that prints the request as the instance got it (its environment: the path, the headers,
which service, instance and region answered).
"""

from __future__ import annotations

import re
import socket
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.api.test_tenancy import second_org
from tests.conftest import Shoal
from tests.e2e.conftest import cgi_image, running_platform
from tests.e2e.test_git_builds import commit
from tests.e2e.test_service_lifecycle import until
from tests.support.registry import ImageBuilder, Registry
from websockets.sync.client import connect

ECHO = """#!/bin/sh
printf 'Content-Type: text/plain\\r\\n\\r\\n'
env
"""


def echo_image(builder: ImageBuilder, reg: Registry, root: Path) -> str:
    return cgi_image(builder, reg, root, "echo", {"echo": ECHO})


def service(
    app_id: str, name: str, image: str, path: str, count: int, regions: tuple[str, ...] = ("fra",)
) -> dict[str, Any]:
    return {
        "app_id": app_id,
        "definition": {
            "name": name,
            "type": "WEB",
            "docker": {"image": image},
            "ports": [{"port": 8000, "protocol": "http"}],
            "routes": [{"path": path, "port": 8000}],
            "regions": list(regions),
            "scalings": [{"min": count, "max": count}],
            "health_checks": [{"http": {"port": 8000, "path": "/index.html"}}],
        },
    }


def seen(text: str) -> dict[str, str]:
    """The CGI environment an instance printed."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def edge_haproxy_pid(shoal: Shoal) -> int:
    """The pid of the edge's HAProxy worker (it changes when HAProxy reloads)."""
    out = subprocess.run(["pgrep", "-af", "shoal-edge-"], capture_output=True, text=True).stdout
    configs = {m.group(1) for m in re.finditer(r"-f (\S+/edge\.cfg)", out)}
    for config in configs:
        try:
            text = Path(config).read_text()
        except FileNotFoundError:  # another platform's, stopped meanwhile
            continue
        if f":{shoal.edge.rsplit(':', 1)[1]}\n" in text:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(Path(config).parent / "edge.sock"))
                s.sendall(b"show info\n")
                info = b""
                while chunk := s.recv(65536):
                    info += chunk
            return int(re.search(rb"^Pid: (\d+)", info, re.M).group(1))  # type: ignore[union-attr]
    raise AssertionError(f"no edge HAProxy for {shoal.edge}: {out}")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("edge") / "data"
    # Each node offers 4 vCPUs (16 nano instances) on this 2-CPU machine: the module runs
    # more instances than the machine's CPUs would hold, each within its own limits.
    capacity = {"SHOAL_NODE_CPUS": "4"}
    yield from running_platform(data, "--regions", "fra,was", "--local-git", env=capacity)


@pytest.fixture(scope="module")
def shop(platform: Shoal, registry: Registry, image_builder: ImageBuilder, tmp_path_factory):
    image = echo_image(image_builder, registry, tmp_path_factory.mktemp("edge"))
    with platform.client() as api:
        app_id = api.post("/v1/apps", json={"name": "shop"}).json()["app"]["id"]
        made = {}
        for name, path, count, regions in (
            ("front", "/", 1, ("fra",)),
            ("api", "/api", 2, ("fra",)),
            ("world", "/world", 1, ("fra", "was")),  # one instance in each
            ("west", "/west", 1, ("was",)),
        ):
            body = service(app_id, name, image, path, count, regions)
            r = api.post("/v1/services", json=body)
            assert r.status_code == 200, r.text
            made[name] = r.json()["service"]
        for name, svc in made.items():
            until(
                f"{name} healthy",
                lambda s=svc: (
                    api.get(f"/v1/services/{s['id']}").json()["service"]["status"] == "HEALTHY"
                ),
            )
        domain = api.get(f"/v1/apps/{app_id}").json()["app"]["domains"][0]["name"]
    return {"domain": domain, "app_id": app_id, **made}


def get(shoal: Shoal, host: str, path: str, **headers: str) -> httpx.Response:
    return httpx.get(shoal.edge + path, headers={"Host": host, **headers}, timeout=10)


def test_routes_by_host_and_longest_prefix_and_strips_it(platform: Shoal, shop):
    host = shop["domain"]
    assert host == "shop-default.localhost"
    front = until(
        "front through the edge",
        lambda: (r := get(platform, host, "/cgi-bin/echo/x?q=1")).status_code == 200 and r,
    )
    env = seen(front.text)
    assert env["KOYEB_SERVICE_NAME"] == "front"
    assert env["REQUEST_URI"] == "/cgi-bin/echo/x?q=1"
    r = until(
        "api through the edge",
        lambda: (
            (r := get(platform, host, "/api/cgi-bin/echo/y")).status_code == 200
            and seen(r.text).get("KOYEB_SERVICE_NAME") == "api"
            and r
        ),
    )
    env = seen(r.text)
    assert env["REQUEST_URI"] == "/cgi-bin/echo/y"  # "/api" taken off
    assert env["HTTP_X_FORWARDED_FOR"] == "127.0.0.1"
    assert env["HTTP_X_FORWARDED_HOST"] == host
    assert env["HTTP_X_FORWARDED_PROTO"] == "http"
    assert re.fullmatch(r"[0-9a-f-]{36}", env["HTTP_X_REQUEST_ID"])
    # A Host with a port, in capitals, is the same app.
    port = platform.edge.rsplit(":", 1)[1]
    assert (
        seen(get(platform, f"SHOP-default.localhost:{port}", "/cgi-bin/echo").text)[
            "KOYEB_SERVICE_NAME"
        ]
        == "front"
    )


def test_spreads_over_healthy_instances(platform: Shoal, shop):
    host = shop["domain"]
    answered = {
        seen(get(platform, host, "/api/cgi-bin/echo").text).get("KOYEB_INSTANCE_ID")
        for _ in range(20)
    }
    assert len(answered - {None}) == 2


def test_the_closest_region_with_a_healthy_instance_serves(platform: Shoal, shop):
    def region(path: str, client: str | None = None) -> str:
        headers = {"X-Shoal-Region": client} if client else {}
        return seen(get(platform, shop["domain"], path, **headers).text)["KOYEB_REGION"]

    # Instances become healthy one by one: until both are, clients may be sent to the other.
    until("Washington's client served there", lambda: region("/world/cgi-bin/echo", "was") == "was")
    until("Frankfurt's client served there", lambda: region("/world/cgi-bin/echo", "fra") == "fra")
    for client, served in (
        (None, "fra"),  # the edge's own region, for clients that do not say
        ("nowhere", "fra"),  # not a region: the same
        ("WAS", "was"),
        ("sfo", "was"),  # San Francisco is closer to Washington than to Frankfurt
        ("par", "fra"),
        ("sin", "fra"),
    ):
        assert region("/world/cgi-bin/echo", client) == served, client
    # Washington alone has `west`: clients everywhere fall back to it.
    for client in ("fra", "sin", None):
        assert region("/west/cgi-bin/echo", client) == "was"
    # Both regions serve (each its own clients).
    seen_regions = {region("/world/cgi-bin/echo", c) for c in ("fra", "was")}
    assert seen_regions == {"fra", "was"}


def test_unknown_host_404_and_no_healthy_instance_503(platform: Shoal, shop):
    r = get(platform, "nobody-default.localhost", "/")
    assert r.status_code == 404
    assert r.text == "No app answers at this address.\n"
    with platform.client() as api:
        assert api.post(f"/v1/services/{shop['api']['id']}/pause").status_code == 200
        r = until(
            "503 once api has no instance",
            lambda: (r := get(platform, shop["domain"], "/api/")).status_code == 503 and r,
        )
        assert "No healthy instance" in r.text
        assert get(platform, shop["domain"], "/cgi-bin/echo").status_code == 200  # front serves
        svc = f"/v1/services/{shop['api']['id']}"
        until("api paused", lambda: api.get(svc).json()["service"]["status"] == "PAUSED")
        assert api.post(f"{svc}/resume").status_code == 200
        until(
            "api back", lambda: get(platform, shop["domain"], "/api/index.html").status_code == 200
        )


def test_instances_come_and_go_without_a_reload(platform: Shoal, shop):
    """Scaling changes servers through HAProxy's runtime API: its worker stays the same."""
    host = shop["domain"]
    before = edge_haproxy_pid(platform)
    with platform.client() as api:
        svc = api.get(f"/v1/services/{shop['api']['id']}").json()["service"]
        dep = api.get(f"/v1/deployments/{svc['latest_deployment_id']}").json()["deployment"]
        definition = {**dep["definition"], "scalings": [{"min": 3, "max": 3}]}
        r = api.patch(f"/v1/services/{svc['id']}", json={"definition": definition})
        assert r.status_code == 200, r.text

        def three() -> bool:
            ids = {
                seen(get(platform, host, "/api/cgi-bin/echo").text).get("KOYEB_INSTANCE_ID")
                for _ in range(30)
            }
            return len(ids - {None}) == 3

        until("three instances answering", three)
    # A new deployment's instances came in and the old ones left: servers only, no reload.
    assert edge_haproxy_pid(platform) == before


APPS = Path(__file__).parent / "apps"


@pytest.fixture(scope="module")
def live(platform: Shoal, shop, tmp_path_factory):
    """Two services of the shop built from one local repository and run on the node's stack:
    `ws` at /ws (a WebSocket echo server), `h2` at /h2 (nginx speaking cleartext HTTP/2)."""
    repo = tmp_path_factory.mktemp("live") / "repo"
    commit(
        repo,
        {
            "index.html": "live",  # a static site: no install step, the run command serves
            "wsecho.py": (APPS / "wsecho.py").read_text(),
            "nginx.conf": (APPS / "h2c-nginx.conf").read_text(),
        },
    )
    nginx = "/usr/sbin/nginx -e stderr -p /tmp -c /workspace/nginx.conf -g 'daemon off;'"
    with platform.client() as api:
        made = {}
        for name, protocol, command in (
            ("ws", "http", "python3 wsecho.py"),
            ("h2", "http2", nginx),
        ):
            definition = {
                "name": name,
                "type": "WEB",
                "git": {"repository": str(repo), "branch": "main", "run_command": command},
                "ports": [{"port": 8000, "protocol": protocol}],
                "routes": [{"path": f"/{name}", "port": 8000}],
                "regions": ["fra"],
                "scalings": [{"min": 1, "max": 1}],
            }
            r = api.post("/v1/services", json={"app_id": shop["app_id"], "definition": definition})
            assert r.status_code == 200, r.text
            made[name] = r.json()["service"]["id"]
        for name, svc_id in made.items():
            until(
                f"{name} healthy",
                lambda i=svc_id: (
                    api.get(f"/v1/services/{i}").json()["service"]["status"] == "HEALTHY"
                ),
            )
    return made


def test_websocket_upgrades_pass_through(platform: Shoal, shop, live):
    host, port = platform.edge.removeprefix("http://").rsplit(":", 1)
    until(  # the edge takes a new service's route soon after it is healthy
        "ws through the edge",
        lambda: get(platform, shop["domain"], "/ws/plain").text == "GET /plain HTTP/1.1\n",
    )
    sock = socket.create_connection((host, int(port)))
    with connect(f"ws://{shop['domain']}/ws/chat", sock=sock, open_timeout=10) as ws:
        for message in ("hello", "again", "x" * 90):  # each answered before the next is sent
            ws.send(message)
            assert ws.recv(timeout=10) == f"echo: {message}"


def test_http2_ports_are_spoken_to_in_cleartext_http2(platform: Shoal, shop, live):
    r = until(
        "h2 through the edge",
        lambda: (r := get(platform, shop["domain"], "/h2/some/page")).status_code == 200 and r,
    )
    assert r.text == "HTTP/2.0 /some/page\n"  # prefix stripped, over h2c


def test_request_metrics_per_instance(platform: Shoal, shop):
    host, svc_id = shop["domain"], shop["front"]["id"]

    def counted() -> dict[str, float] | None:
        # More requests at each look: a reload of HAProxy (another test's new service)
        # starts its counters again, and what the old worker counted since the last second
        # is not sent.
        for _ in range(10):
            assert get(platform, host, "/index.html").status_code == 200
        get(platform, host, "/missing")  # a 404 from the instance
        text = platform.client().get("/metrics").text
        totals = dict.fromkeys(("2xx", "4xx"), 0.0)
        for line in text.splitlines():
            if line.startswith("shoal_http_requests_total") and f'service_id="{svc_id}"' in line:
                for code in totals:
                    if f'code="{code}"' in line:
                        totals[code] += float(line.rsplit(" ", 1)[1])
        return totals if totals["2xx"] >= 20 and totals["4xx"] >= 1 else None

    until("the edge's counts in /metrics", counted)
    with platform.client() as api:
        params = {"service_id": svc_id, "name": "HTTP_THROUGHPUT", "step": "1m"}
        [series] = api.get("/v1/streams/metrics", params=params).json()["metrics"]
        assert sum(p["value"] for p in series["samples"]) * 60 >= 21
        params["name"] = "HTTP_RESPONSE_TIME_MAX"
        [series] = api.get("/v1/streams/metrics", params=params).json()["metrics"]
        assert all(p["value"] >= 0 for p in series["samples"]) and series["samples"]


def test_proxy_ports_get_a_public_tcp_port(
    platform: Shoal, shop, registry, image_builder, tmp_path
):
    image = echo_image(image_builder, registry, tmp_path)
    script = "/bin/busybox httpd -p 7000 -h /www && exec /bin/busybox httpd -f -p 8000 -h /www"
    definition = {
        **service(shop["app_id"], "raw", image, "/raw", 1)["definition"],
        "ports": [{"port": 8000, "protocol": "http"}, {"port": 7000, "protocol": "tcp"}],
        "proxy_ports": [{"port": 7000, "protocol": "tcp"}],
    }
    definition["docker"]["entrypoint"] = ["/bin/busybox", "sh", "-c", script]
    with platform.client() as api:
        r = api.post("/v1/services", json={"app_id": shop["app_id"], "definition": definition})
        assert r.status_code == 200, r.text
        svc = r.json()["service"]
        dep = api.get(f"/v1/deployments/{svc['latest_deployment_id']}").json()["deployment"]
        [proxied] = dep["metadata"]["proxy_ports"]
        assert proxied["port"] == 7000 and proxied["protocol"] == "tcp"
        assert proxied["host"] == shop["domain"] and 20000 <= proxied["public_port"] < 30000
        # A new deployment of the service keeps its public port.
        r = api.post(f"/v1/services/{svc['id']}/redeploy", json={})
        assert r.json()["deployment"]["metadata"]["proxy_ports"] == [proxied]

    def raw_get() -> str:
        host = platform.edge.removeprefix("http://").rsplit(":", 1)[0]
        try:
            with socket.create_connection((host, proxied["public_port"]), timeout=5) as s:
                s.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
                return s.makefile("rb").read().decode()
        except OSError:
            return ""

    answer = until("the instance through the edge's TCP port", lambda: raw_get())
    assert answer.startswith("HTTP/1.") and answer.endswith("ok")


CALLER = """#!/bin/sh
printf 'Content-Type: text/plain\\r\\n\\r\\n'
wget -q -O - "http://$QUERY_STRING" 2>&1 || echo FAILED
"""
HOSTS = """#!/bin/sh
printf 'Content-Type: text/plain\\r\\n\\r\\n'
cat /etc/hosts
"""


def caller_image(builder: ImageBuilder, reg: Registry, root: Path) -> str:
    """busybox httpd whose /cgi-bin/call?HOST:PORT/PATH fetches http://HOST:PORT/PATH from
    inside the instance, and /cgi-bin/hosts shows its /etc/hosts."""
    return cgi_image(builder, reg, root, "caller", {"call": CALLER, "hosts": HOSTS})


@pytest.fixture(scope="module")
def mesh(platform: Shoal, shop, registry, image_builder, tmp_path_factory):
    """`db`, a private service of the shop, and `caller`, a public one of the shop, both in
    Frankfurt and Washington; and `spy`, an app of another organization with the same
    caller."""
    root = tmp_path_factory.mktemp("mesh")
    echo, caller = (
        echo_image(image_builder, registry, root),
        caller_image(image_builder, registry, root),
    )
    both = ("fra", "was")
    db = service(shop["app_id"], "db", echo, "/", 1, both)
    db["definition"]["routes"] = []  # private
    made = []
    api = platform.client()
    for body in (db, service(shop["app_id"], "caller", caller, "/caller", 1, both)):
        r = api.post("/v1/services", json=body)
        assert r.status_code == 200, r.text
        made.append((api, r.json()["service"]["id"]))
    spy = platform.client(second_org(api))
    app_id = spy.post("/v1/apps", json={"name": "spy"}).json()["app"]["id"]
    r = spy.post("/v1/services", json=service(app_id, "caller", caller, "/", 1, ("was",)))
    assert r.status_code == 200, r.text
    made.append((spy, r.json()["service"]["id"]))
    for client, svc_id in made:
        until(
            "mesh services healthy",
            lambda c=client, i=svc_id: (
                c.get(f"/v1/services/{i}").json()["service"]["status"] == "HEALTHY"
            ),
        )
    yield {"spy": "spy-other.localhost"}
    spy.delete(f"/v1/apps/{app_id}")
    until("the spy app gone", lambda: spy.get("/v1/apps").json()["count"] == 0)


def test_an_organizations_instances_reach_its_private_services_by_name(platform, shop, mesh):
    def call(host: str, path: str, target: str, region: str = "was") -> str:
        """What `target` answered the caller of `region` (the edge's client region)."""
        url = f"{path}/cgi-bin/call?{target}/cgi-bin/echo"
        return get(platform, host, url, **{"X-Shoal-Region": region}).text

    answer = until(
        "db by name from the shop's caller",
        lambda: (
            "KOYEB_SERVICE_NAME=db" in (text := call(shop["domain"], "/caller", "db:8000")) and text
        ),
    )
    assert "REQUEST_URI=/cgi-bin/echo" in answer
    # The same region's instances, through the .internal name, from each region.
    for region in ("fra", "was"):
        internal = seen(call(shop["domain"], "/caller", "db.shop.internal:8000", region))
        assert (internal.get("KOYEB_SERVICE_NAME"), internal.get("KOYEB_REGION")) == ("db", region)
    hosts = get(platform, shop["domain"], "/caller/cgi-bin/hosts").text
    [address] = [line.split()[0] for line in hosts.splitlines() if line.endswith(" db")]

    # Another organization's instance: the name does not resolve, the address does not connect.
    spy_hosts = until(  # healthy for the API, then in the edge's table
        "the spy's caller through the edge",
        lambda: (r := get(platform, mesh["spy"], "/cgi-bin/hosts")).status_code == 200 and r.text,
    )
    assert "localhost" in spy_hosts and " db" not in spy_hosts and address not in spy_hosts
    assert call(mesh["spy"], "", "db:8000").strip().endswith("FAILED")
    assert call(mesh["spy"], "", f"{address}:8000").strip().endswith("FAILED")
