"""Every problem with a completed deployment definition, named by field (pure).

Ranges (Koyeb's documented and console values, the wider where they differ, so that tests
and small apps can check quickly):
grace period 1-900 s, interval 1-300 s, timeout 1-600 s, restart limit 1-10, scaling 0-20.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from shoal.core.catalog import INSTANCE_TYPES
from shoal.core.definition import DefinitionType, DeploymentDefinition, HealthCheck
from shoal.core.errors import FieldError
from shoal.core.names import name_problem
from shoal.core.secret_refs import referenced_secrets

PROTOCOLS = ("http", "http2", "tcp")
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
MAX_SCALE = 20
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SCOPE = re.compile(r"^region:([a-z0-9-]+)$")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]*$")
# A URL path (no quote: the edge's HAProxy configuration quotes it in single quotes).
_PATH = re.compile(r"^/[A-Za-z0-9._~!$&()*+,;=:@%/-]*$")
# How a check reports a problem: (path under the definition, description).
_Bad = Callable[[str, str], None]
_RANGES = {
    "grace_period": (1, 900),
    "interval": (1, 300),
    "timeout": (1, 600),
    "restart_limit": (1, 10),
}


@dataclass(frozen=True)
class Context:
    regions: frozenset[str]  # regions this platform offers
    secret_names: frozenset[str]  # the organization's secrets
    registry_secret_names: frozenset[str]  # those of type REGISTRY
    free_instances_elsewhere: int = 0  # free instances the organization's other services use
    archive_ids: frozenset[str] = frozenset()  # the organization's uploaded archives
    # Repositories on the node's own disk (paths, file://): for a one-operator platform only,
    # as any tenant could otherwise build whatever repository the node holds.
    local_repositories: bool = False


def check(d: DeploymentDefinition, ctx: Context, prefix: str = "definition") -> list[FieldError]:
    problems: list[FieldError] = []

    def bad(path: str, description: str) -> None:
        problems.append(FieldError(f"{prefix}.{path}" if path else prefix, description))

    problem = name_problem(d.name)
    if problem:
        bad("name", problem)
    if d.type not in (DefinitionType.WEB, DefinitionType.WORKER):
        bad("type", "must be WEB or WORKER")
    _check_source(d, ctx, bad)
    regions = _check_regions(d, ctx, bad)
    _check_ports(d, bad)
    _check_checks(d, bad)
    _check_instance_types(d, regions, ctx, bad)
    _check_scalings(d, regions, bad)
    _check_env(d, regions, ctx, bad)
    for name, value in (("volumes", d.volumes), ("database", d.database)):
        if value:
            bad(name, "is not supported by shoal")
    for i, f in enumerate(d.config_files or []):
        if not f.path or not f.path.startswith("/"):
            bad(f"config_files[{i}].path", "must be an absolute path")
        if f.permissions and not re.fullmatch(r"0?[0-7]{3}", f.permissions):
            bad(f"config_files[{i}].permissions", "must be an octal mode such as 0644")
    return problems


# Koyeb's own form is `github.com/org/repo` (https is meant).
_REPOSITORY = re.compile(
    r"^(?:(?:https?|git|ssh|file)://\S+|[\w.-]+@[\w.-]+:\S+|/\S*|[\w-]+(?:\.[\w-]+)+/\S+)$"
)


_SHA = re.compile(r"^[0-9a-fA-F]{4,40}$")


def _local(repository: str) -> bool:
    return repository.startswith(("/", "file://"))


def _internal_host(repository: str) -> bool:
    """Whether the URL's host is the node's loopback or link-local (cloud metadata...)."""
    host = urlsplit(repository).hostname if "://" in repository else None
    if host is None:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_link_local or address.is_unspecified


def _check_source(d: DeploymentDefinition, ctx: Context, bad: _Bad) -> None:
    sources = [n for n in ("docker", "git", "archive") if getattr(d, n) is not None]
    if len(sources) != 1:
        bad("", "must have exactly one source: docker, git or archive")
        return
    if d.docker is not None:
        if not d.docker.image or not _IMAGE.match(d.docker.image):
            bad("docker.image", "must be an image reference such as registry.example/app:1.0")
        secret = d.docker.image_registry_secret
        if secret and secret not in ctx.registry_secret_names:
            bad("docker.image_registry_secret", f"no registry secret named {secret!r}")
    if d.git is not None:
        if not d.git.repository:
            bad("git.repository", "is required")
        elif not _REPOSITORY.match(d.git.repository):
            bad(
                "git.repository",
                "must be a URL (https://, http://, git://, ssh://, git@host:path, file://), "
                "host/org/repo, or an absolute path",
            )
        elif _local(d.git.repository) and not ctx.local_repositories:
            bad(
                "git.repository",
                "repositories on the node's disk are off on this platform (shoal up "
                "--local-git turns them on)",
            )
        elif _internal_host(d.git.repository):
            bad("git.repository", "must not be on the node's loopback or a link-local address")
        if d.git.sha and not _SHA.match(d.git.sha):
            bad("git.sha", "must be a commit id: 4 to 40 hexadecimal digits")
        refs = [r for r in (d.git.branch, d.git.tag, d.git.sha) if r]
        if len(refs) > 1:
            bad("git", "set only one of branch, tag and sha")
        if d.git.buildpack is not None and d.git.docker is not None:
            bad("git", "set only one of buildpack and docker")
        if d.git.workdir and (d.git.workdir.startswith("/") or ".." in d.git.workdir.split("/")):
            bad("git.workdir", "must be a relative path inside the repository")
    if d.archive is not None:
        if not d.archive.id:
            bad("archive.id", "is required")
        elif d.archive.id not in ctx.archive_ids:
            bad("archive.id", "no uploaded archive with this id: create one and upload it first")
        if d.archive.buildpack is not None and d.archive.docker is not None:
            bad("archive", "set only one of buildpack and docker")


def _check_regions(d: DeploymentDefinition, ctx: Context, bad: _Bad) -> set[str]:
    regions = d.regions or []
    for i, region in enumerate(regions):
        if region not in ctx.regions:
            offered = ", ".join(sorted(ctx.regions))
            bad(f"regions[{i}]", f"unknown region {region!r} (offered: {offered})")
    for region, n in Counter(regions).items():
        if n > 1:
            bad("regions", f"region {region!r} is listed twice")
    return set(regions)


def _check_ports(d: DeploymentDefinition, bad: _Bad) -> None:
    ports = d.ports or []
    routes = d.routes or []
    if d.type == DefinitionType.WORKER:
        if ports:
            bad("ports", "a worker receives no traffic: remove its ports")
        if routes:
            bad("routes", "a worker receives no traffic: remove its routes")
        if d.proxy_ports:
            bad("proxy_ports", "a worker receives no traffic: remove its proxy ports")
    protocols: dict[int, str] = {}
    for i, p in enumerate(ports):
        if p.port is None or not 1 <= p.port <= 65535:
            bad(f"ports[{i}].port", "must be between 1 and 65535")
            continue
        if p.protocol not in PROTOCOLS:
            bad(f"ports[{i}].protocol", f"must be one of {', '.join(PROTOCOLS)}")
        if p.port in protocols:
            bad(f"ports[{i}].port", f"port {p.port} is exposed twice")
        protocols[p.port] = p.protocol or "http"
    seen_paths: set[str] = set()
    for i, r in enumerate(routes):
        if not r.path or not _PATH.match(r.path):
            bad(f"routes[{i}].path", "must start with / and be a URL path")
        elif (r.path.rstrip("/") or "/") in seen_paths:  # "/api/" is "/api"
            bad(f"routes[{i}].path", f"path {r.path!r} is routed twice")
        else:
            seen_paths.add(r.path.rstrip("/") or "/")
        if r.port not in protocols:
            bad(f"routes[{i}].port", f"port {r.port} is not exposed in ports")
        elif protocols[r.port] == "tcp":
            bad(f"routes[{i}].port", f"port {r.port} speaks tcp: HTTP routes need http or http2")
    for i, pp in enumerate(d.proxy_ports or []):
        if pp.port not in protocols:
            bad(f"proxy_ports[{i}].port", f"port {pp.port} is not exposed in ports")
        if pp.protocol not in (None, "tcp"):
            bad(f"proxy_ports[{i}].protocol", "must be tcp")


def _check_checks(d: DeploymentDefinition, bad: _Bad) -> None:
    exposed = {p.port for p in d.ports or []}
    seen: set[int | None] = set()
    for i, hc in enumerate(d.health_checks or []):
        at = f"health_checks[{i}]"
        if (hc.tcp is None) == (hc.http is None):
            bad(at, "must have exactly one of tcp and http")
            continue
        port = hc.tcp.port if hc.tcp else hc.http.port if hc.http else None
        if port not in exposed:
            kind = "tcp" if hc.tcp else "http"
            bad(f"{at}.{kind}.port", f"port {port} is not exposed in ports")
        elif port in seen:
            bad(at, f"port {port} has two health checks")
        seen.add(port)
        _check_timings(hc, at, bad)
        if hc.http is not None:
            if not hc.http.path or not hc.http.path.startswith("/"):
                bad(f"{at}.http.path", "must start with /")
            if hc.http.method not in HTTP_METHODS:
                bad(f"{at}.http.method", f"must be one of {', '.join(HTTP_METHODS)}")
            for j, h in enumerate(hc.http.headers or []):
                if not h.key or not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", h.key):
                    bad(f"{at}.http.headers[{j}].key", "must be an HTTP header name")


def _check_timings(hc: HealthCheck, at: str, bad: _Bad) -> None:
    for name, (low, high) in _RANGES.items():
        value = getattr(hc, name)
        if value is None or not low <= value <= high:
            bad(f"{at}.{name}", f"must be between {low} and {high}")


def _scope_regions(scopes: Iterable[str], regions: set[str], at: str, bad: _Bad) -> set[str]:
    """The regions a list of scopes covers; an empty list covers all of them."""
    covered: set[str] = set()
    scopes = list(scopes)
    for j, scope in enumerate(scopes):
        m = _SCOPE.match(scope)
        if not m:
            bad(f"{at}.scopes[{j}]", "must look like region:<id>")
        elif m.group(1) not in regions:
            bad(f"{at}.scopes[{j}]", f"region {m.group(1)!r} is not in the service's regions")
        else:
            covered.add(m.group(1))
    return covered if scopes else set(regions)


def _check_instance_types(
    d: DeploymentDefinition, regions: set[str], ctx: Context, bad: _Bad
) -> None:
    free_regions: set[str] = set()
    for i, choice in enumerate(d.instance_types or []):
        at = f"instance_types[{i}]"
        covered = _scope_regions(choice.scopes or [], regions, at, bad)
        itype = INSTANCE_TYPES.get(choice.type or "")
        if itype is None:
            bad(f"{at}.type", f"unknown instance type {choice.type!r}")
            continue
        for region in sorted(covered):
            if not itype.available_in(region):
                where = "Frankfurt (fra) and Washington, D.C. (was)"
                if not itype.is_free:
                    where = "Washington, D.C. (was), Frankfurt (fra) and Singapore (sin)"
                bad(f"{at}.type", f"{itype.id} is offered only in {where}, not in {region!r}")
        if itype.is_free:
            if d.type != DefinitionType.WEB:
                bad(f"{at}.type", "the free instance type is for web services only")
            free_regions |= covered
    if free_regions:
        free_count = sum(_max_in(d, r) for r in free_regions)
        if free_count + ctx.free_instances_elsewhere > 1:
            bad("instance_types", "an organization may run only one free instance")


def _max_in(d: DeploymentDefinition, region: str) -> int:
    for scaling in d.scalings or []:
        scopes = scaling.scopes or []
        if not scopes or f"region:{region}" in scopes:
            return scaling.max or 0
    return 1


def _check_scalings(d: DeploymentDefinition, regions: set[str], bad: _Bad) -> None:
    for i, s in enumerate(d.scalings or []):
        at = f"scalings[{i}]"
        _scope_regions(s.scopes or [], regions, at, bad)
        lo, hi = s.min or 0, s.max or 0
        if not 0 <= lo <= MAX_SCALE:
            bad(f"{at}.min", f"must be between 0 and {MAX_SCALE}")
        if not 0 <= hi <= MAX_SCALE:
            bad(f"{at}.max", f"must be between 0 and {MAX_SCALE}")
        if lo > hi:
            bad(f"{at}.min", f"min ({lo}) must not exceed max ({hi})")
        if d.type == DefinitionType.WEB and hi == 0:
            bad(f"{at}.max", "must be at least 1")
        for j, t in enumerate(s.targets or []):
            _check_target(d, lo, f"{at}.targets[{j}]", t, bad)


def _check_target(d: DeploymentDefinition, lo: int, at: str, t: object, bad: _Bad) -> None:
    set_fields = [k for k, v in vars(t).items() if v is not None]
    if len(set_fields) != 1:
        bad(at, "must set exactly one target")
        return
    kind = set_fields[0]
    target = getattr(t, kind)
    if kind == "sleep_idle_delay":
        if lo != 0:
            bad(f"{at}.sleep_idle_delay", "only applies when min is 0")
        if d.type == DefinitionType.WORKER:
            bad(f"{at}.sleep_idle_delay", "workers never sleep")
        for name in ("value", "light_sleep_value", "deep_sleep_value"):
            v = getattr(target, name)
            if v is not None and v < 0:
                bad(f"{at}.sleep_idle_delay.{name}", "must not be negative")
        light, deep = target.light_sleep_value, target.deep_sleep_value
        if light and deep and deep < light:
            bad(
                f"{at}.sleep_idle_delay.deep_sleep_value",
                "must not be shorter than light_sleep_value",
            )
        return
    if target.value is None or target.value < 1:
        bad(f"{at}.{kind}.value", "must be at least 1")
    if kind in ("average_cpu", "average_mem") and (target.value or 0) > 100:
        bad(f"{at}.{kind}.value", "is a percentage: at most 100")
    if kind == "requests_response_time" and target.quantile not in (50, 75, 90, 95, 99):
        bad(f"{at}.requests_response_time.quantile", "must be one of 50, 75, 90, 95, 99")


def _check_env(d: DeploymentDefinition, regions: set[str], ctx: Context, bad: _Bad) -> None:
    seen: set[tuple[str, frozenset[str]]] = set()
    for i, e in enumerate(d.env or []):
        at = f"env[{i}]"
        if not e.key or not _ENV_KEY.match(e.key):
            bad(f"{at}.key", "must be a letter or _ followed by letters, digits or _")
        covered = frozenset(_scope_regions(e.scopes or [], regions, at, bad))
        key = (e.key or "", covered)
        if key in seen:
            bad(f"{at}.key", f"{e.key} is set twice")
        seen.add(key)
        if e.secret is not None and e.value is not None:
            bad(at, "set value or secret, not both")
        names = [e.secret] if e.secret else referenced_secrets(e.value or "")
        for name in names:
            if name not in ctx.secret_names:
                bad(f"{at}.{'secret' if e.secret else 'value'}", f"no secret named {name!r}")
