"""HAProxy's configuration, as text: a pure function of what it fronts.

The API front spreads reads over every API process and sends the rest to the primary one,
the process that also runs the control loops: writes wake those loops in memory, and the
agents' long polls, the exec and log WebSockets and the request metrics meet state that
lives in that process.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from shoal.client.waker import WAKE_S
from shoal.edge.activator import ROUTE_HEADER
from shoal.edge.request_log import LOG_ALL_RATE, LOG_FORMAT, LOG_SAMPLE

# Under the open-files limit of a default shell (HAProxy refuses more than it can open).
MAXCONN = 4000


@dataclass(frozen=True)
class ApiFront:
    host: str  # an IPv6 address too, bare: HAProxy splits HOST:PORT at the last colon
    port: int
    primary: str  # Unix socket of the primary API process
    readers: tuple[str, ...]  # Unix sockets of the read-only API processes


def render(front: ApiFront, stats_socket: str, user: str | None = None) -> str:
    """The whole configuration. `user`: the account HAProxy drops to once it has bound its
    sockets (None: it keeps the one it was started as)."""
    readers = "\n".join(
        f"    server reader-{n} unix@{path} check" for n, path in enumerate(front.readers, 1)
    )
    identity = f"    user {user}\n    group {user}\n" if user else ""
    return f"""\
global
    maxconn {MAXCONN}
    stats socket {stats_socket} mode 600 level admin expose-fd listeners
{identity}
defaults
    mode http
    retries 3
    option redispatch
    timeout connect 5s
    timeout http-request 30s
    timeout http-keep-alive 60s
    timeout client 10m
    timeout server 10m
    timeout tunnel 1h

frontend api
    bind {front.host}:{front.port}
    acl read method GET HEAD
    acl stateful path_beg /internal/ /v1/streams/
    acl stateful path /metrics
    use_backend api_primary if !read || stateful
    default_backend api_reads

backend api_primary
    server primary unix@{front.primary}

backend api_reads
    balance leastconn
    option httpchk GET /health
    # Only reads come here: one that a dying process never answered is asked again.
    retry-on conn-failure empty-response response-timeout
    server primary unix@{front.primary} check
{readers}
"""


# ------------------------------------------------------------------------------ the edge

# Where a request goes is looked up by its client's region, "@", its host (without a port),
# its path, then "/" (see `map_key`).
WHERE = "req.hdr(host),field(1,:),lower,concat(,txn.path,/)"
ROUTE_KEY = "var(txn.region),concat(@,txn.where)"
NO_APP = "No app answers at this address.\n"
WAKE_LUA = Path(__file__).with_name("wake.lua")
NO_INSTANCE = "No healthy instance of this service can answer right now: retry shortly.\n"


@dataclass(frozen=True)
class Backend:
    """One route's pool: what a reload must know (its servers change without one)."""

    name: str
    path: str  # the prefix stripped before the request reaches an instance
    http2: bool  # cleartext HTTP/2 to the instances
    service_id: str = ""


def route_map(entries: list[tuple[str, str]]) -> str:
    """HAProxy's map from `host/path` prefixes to backends, longest prefix first: `map_beg`
    takes the first entry that matches."""
    ordered = sorted(entries, key=lambda e: (-len(e[0]), e[0]))
    return "".join(f"{key} {backend}\n" for key, backend in ordered)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _strip(path: str) -> str:
    """The rule that takes the route's `path` off the front of the request's path ("/api/list"
    -> "/list", "/api" -> "/"). In single quotes, where HAProxy's parser interprets nothing
    (route paths never hold one: core/validation.py)."""
    prefix = path.rstrip("/")
    if not prefix:
        return ""
    return f"    http-request replace-path '^{re.escape(prefix)}/?(.*)$' '/\\1'\n"


def map_key(region: str, host: str, path: str) -> str:
    """A route's key in the route map, for clients in `region`. Both the key and what a
    request is looked up by end in "/", so that a route matches whole path segments: "/api"
    takes "/api" and "/api/x", not "/apix"."""
    return f"{region}@{host}{path.rstrip('/')}/"


@dataclass(frozen=True)
class ClientRegion:
    """How the edge tells a request's region: the `header` when it names one of `regions`,
    else the source address looked up in `sources_map` ("CIDR region" lines), else
    `default`."""

    regions: tuple[str, ...]
    default: str
    header: str
    sources_map: str


def sources_map(text: str, regions: tuple[str, ...]) -> str:
    """A map of client addresses to regions, from "CIDR region" lines ("#" starts a comment),
    checked: a ValueError names the first bad line."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        try:
            if len(words) != 2:
                raise ValueError("expected 'CIDR region'")
            network, region = ipaddress.ip_network(words[0], strict=False), words[1].lower()
            if region not in regions:
                raise ValueError(f"unknown region {region!r}")
        except ValueError as e:
            raise ValueError(f"line {n}: {e}") from None
        out.append(f"{network} {region}\n")
    return "".join(out)


def sleeper(socket: str, instance_id: str, address: str, port: int) -> str | None:
    """A route's entry in the map of sleepers, as wake.lua reads it: the agent's wake socket,
    the instance, where it listens; None when a part would not survive the map (a space, a
    comma)."""
    parts = (socket, instance_id, address, str(port))
    if any(not p or "," in p or any(c.isspace() for c in p) for p in parts):
        return None
    return ",".join(parts)


def server_line(name: str, address: str, port: int, http2: bool) -> str:
    """A server as written in the configuration and as given to `add server`."""
    return f"{name} {address}:{port}" + (" proto h2" if http2 else "")


def render_edge(
    host: str,
    port: int,
    backends: list[tuple[Backend, list[str]]],
    map_file: str,
    client: ClientRegion,
    stats_socket: str,
    request_log: str,
    activator: str,
    sleepers_map: str,
    tcp: Sequence[tuple[str, str, int, list[str]]] = (),
    user: str | None = None,
) -> str:
    """The edge's whole configuration: the frontend on HOST:PORT, and each backend with its
    servers (`server_line`s), and a TCP listener for each of `tcp` ((name, address, port,
    server lines); on HOST when the address is ""). Requests are logged to the Unix datagram
    socket `request_log`, in request_log.LOG_FORMAT (sampled above LOG_ALL_RATE a second).

    A backend whose every instance sleeps on this machine has an entry in `sleepers_map`
    (backend -> `sleeper`): HAProxy asks the agent to wake that instance (wake.lua) and sends
    the request to it through the `woken` server, whose address is the request's destination,
    set to the instance's (weight 0: it takes no other request). The `wake` server (weight 0
    too) is the activator, on the Unix socket `activator`: it takes what no instance can
    (asleep elsewhere, or not woken). A backend with instances serving does none of it, but
    for the checks that tell (the request path of every request)."""
    identity = f"    user {user}\n    group {user}\n" if user else ""
    by_source = f"src,map_ip({client.sources_map},{client.default})"
    woken = "{ var(txn.woken_ip) -m found }"
    pools = "".join(
        f"""
backend {b.name}
    balance leastconn
    # No instance serving (nbsrv counts neither weight-0 server): wake one, or the activator.
    acl idle nbsrv eq 0
    http-request set-var(txn.asleep) be_name,map({sleepers_map}) if idle
    http-request lua.shoal_wake {WAKE_S:g} if {{ var(txn.asleep) -m found }}
    http-request set-dst var(txn.woken_ip) if {woken}
    http-request set-dst-port var(txn.woken_port) if {woken}
    http-request set-header {ROUTE_HEADER} "{b.name} {b.service_id}" if idle !{woken}
    use-server woken if {woken}
    use-server wake if idle
{_strip(b.path)}    server wake unix@{activator} weight 0
    server {server_line("woken", "0.0.0.0", 0, b.http2)} weight 0
"""
        + "".join(f"    server {line}\n" for line in servers)
        for b, servers in backends
    )
    return f"""\
global
    maxconn {MAXCONN}
    stats socket {stats_socket} mode 600 level admin expose-fd listeners
    hard-stop-after 5m
    lua-load {WAKE_LUA}
    log unix@{request_log} len 512 format raw local0
{identity}
defaults
    mode http
    log global
    log-format {_quote(LOG_FORMAT)}
    option dontlognull
    option forwardfor
    retries 3
    option redispatch
    # Requests no instance answered are sent to another, but only idempotent ones.
    retry-on conn-failure empty-response response-timeout
    timeout connect 5s
    timeout http-request 30s
    timeout http-keep-alive 60s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
    timeout queue 10s
    http-error status 503 content-type text/plain string {_quote(NO_INSTANCE)}

frontend edge
    bind {host}:{port}
    unique-id-format %[uuid()]
    http-request set-header X-Request-Id %[unique-id]
    http-request disable-l7-retry unless {{ method GET HEAD OPTIONS PUT DELETE }}
    # Response times come from logged requests: all of them up to LOG_ALL_RATE a second,
    # one in LOG_SAMPLE beyond (the others' log lines are never even made).
    acl busy fe_req_rate gt {LOG_ALL_RATE}
    acl sampled rand({LOG_SAMPLE}) -m int 0
    http-request set-log-level silent if busy !sampled
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    http-request set-header X-Forwarded-Proto http
    acl region_asked req.hdr({client.header}),lower -m str {" ".join(client.regions)}
    http-request set-var(txn.region) req.hdr({client.header}),lower if region_asked
    http-request set-var(txn.region) {by_source} unless region_asked
    http-request set-var(txn.path) path
    http-request set-var(txn.where) {WHERE}
    http-request set-var(txn.route) {ROUTE_KEY},map_beg({map_file})
    use_backend %[var(txn.route)] if {{ var(txn.route) -m found }}
    default_backend no_app

backend no_app
    http-request return status 404 content-type text/plain string {_quote(NO_APP)}
{pools}{_tcp(host, tcp)}"""


def _tcp(host: str, listeners: Sequence[tuple[str, str, int, list[str]]]) -> str:
    if not listeners:
        return ""
    sections = "".join(
        f"""
listen {name}
    bind {address or host}:{port}
    balance leastconn
"""
        + "".join(f"    server {line}\n" for line in servers)
        for name, address, port, servers in listeners
    )
    return f"""
defaults tcp
    mode tcp
    option dontlognull
    retries 3
    option redispatch
    timeout connect 5s
    timeout client 1h
    timeout server 1h
{sections}"""
