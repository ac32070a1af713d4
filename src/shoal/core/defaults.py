"""Koyeb's defaults for whatever a deployment definition leaves out (pure)."""

from __future__ import annotations

from shoal.core.catalog import DEFAULT_INSTANCE_TYPE
from shoal.core.definition import (
    DefinitionType,
    DeploymentDefinition,
    HealthCheck,
    InstanceTypeChoice,
    Mesh,
    Port,
    Route,
    Scaling,
    Strategy,
    StrategyType,
    TCPCheck,
)

DEFAULT_PORT = 8000
GRACE_PERIOD_S = 5
INTERVAL_S = 60
RESTART_LIMIT = 3
TIMEOUT_S = 5


def complete(definition: DeploymentDefinition, default_region: str) -> DeploymentDefinition:
    """Return a copy with every default filled in; the input is left untouched.

    - type WEB; strategy DEFAULT; mesh AUTO; one region (the platform's first);
    - a web service with neither ports nor routes gets port 8000/http routed at `/`
      (a web service with ports but no route is private and stays so);
    - ports speak http unless told otherwise;
    - instance type nano, scaling min = max = 1 (the free type: min 0, so it can sleep);
    - a TCP health check on every exposed port without one; check timings default to
      grace 5 s, interval 60 s, restart limit 3, timeout 5 s; HTTP checks to GET `/`.
    """
    d = definition.model_copy(deep=True)
    if d.type in (None, DefinitionType.INVALID):
        d.type = DefinitionType.WEB
    if d.strategy is None:
        d.strategy = Strategy()
    elif d.strategy.type == StrategyType.INVALID:
        d.strategy.type = StrategyType.DEFAULT
    if d.mesh is None:
        d.mesh = Mesh.AUTO
    if not d.regions:
        d.regions = [default_region]
    d.env = d.env or []
    d.config_files = d.config_files or []
    d.proxy_ports = d.proxy_ports or []
    d.skip_cache = bool(d.skip_cache)

    if d.type == DefinitionType.WEB and not d.ports and not d.routes:
        d.ports = [Port(port=DEFAULT_PORT, protocol="http")]
        d.routes = [Route(port=DEFAULT_PORT, path="/")]
    d.ports = d.ports or []
    d.routes = d.routes or []
    for port in d.ports:
        if not port.protocol:
            port.protocol = "http"

    if not d.instance_types:
        d.instance_types = [InstanceTypeChoice(scopes=[], type=DEFAULT_INSTANCE_TYPE)]
    for choice in d.instance_types:
        choice.scopes = choice.scopes or []
    if not d.scalings:
        free = any(c.type == "free" for c in d.instance_types)
        d.scalings = [Scaling(scopes=[], min=0 if free else 1, max=1, targets=[])]
    for scaling in d.scalings:
        scaling.scopes = scaling.scopes or []
        scaling.targets = scaling.targets or []
        if scaling.min is None:
            scaling.min = scaling.max if scaling.max is not None else 1
        if scaling.max is None:
            scaling.max = scaling.min

    checks = d.health_checks or []
    checked = {c.tcp.port if c.tcp else c.http.port if c.http else None for c in checks}
    for port in d.ports:
        if port.port not in checked:
            checks.append(HealthCheck(tcp=TCPCheck(port=port.port)))
            checked.add(port.port)
    for check in checks:
        _complete_check(check)
    d.health_checks = checks
    return d


def _complete_check(check: HealthCheck) -> None:
    if check.grace_period is None:
        check.grace_period = GRACE_PERIOD_S
    if check.interval is None:
        check.interval = INTERVAL_S
    if check.restart_limit is None:
        check.restart_limit = RESTART_LIMIT
    if check.timeout is None:
        check.timeout = TIMEOUT_S
    if check.http is not None:
        check.http.path = check.http.path or "/"
        check.http.method = (check.http.method or "GET").upper()
        check.http.headers = check.http.headers or []
