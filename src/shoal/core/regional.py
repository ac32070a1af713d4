"""A deployment definition as one region sees it: scopes resolved (pure)."""

from __future__ import annotations

from typing import Any

from shoal.core.definition import DeploymentDefinition


def _applies(scopes: list[str] | None, region: str) -> bool:
    return not scopes or f"region:{region}" in scopes


def _most_specific(items: list[Any], region: str) -> Any | None:
    """A choice scoped to the region wins over an unscoped one."""
    scoped = [i for i in items if i.scopes and f"region:{region}" in i.scopes]
    if scoped:
        return scoped[0]
    unscoped = [i for i in items if not i.scopes]
    return unscoped[0] if unscoped else None


def regional_definition(d: DeploymentDefinition, region: str) -> dict[str, Any]:
    """Koyeb's `RegionalDeploymentDefinition` for `region` of a completed definition."""
    instance_type = _most_specific(list(d.instance_types or []), region)
    scaling = _most_specific(list(d.scalings or []), region)
    env: dict[str, dict[str, Any]] = {}
    for e in d.env or []:  # a region-scoped value overrides the unscoped one
        if _applies(e.scopes, region) and (e.scopes or e.key not in env):
            env[e.key or ""] = {
                k: v
                for k, v in (("key", e.key), ("value", e.value), ("secret", e.secret))
                if v is not None
            }
    out: dict[str, Any] = {
        "name": d.name,
        "type": d.type,
        "strategy": d.strategy.model_dump(mode="json") if d.strategy else None,
        "routes": [r.model_dump(mode="json", exclude_none=True) for r in d.routes or []],
        "ports": [p.model_dump(mode="json", exclude_none=True) for p in d.ports or []],
        "env": list(env.values()),
        "region": region,
        "scaling": {
            "min": scaling.min,
            "max": scaling.max,
            "targets": [
                t.model_dump(mode="json", exclude_none=True) for t in scaling.targets or []
            ],
        }
        if scaling
        else None,
        "instance_type": instance_type.type if instance_type else None,
        "health_checks": [
            h.model_dump(mode="json", exclude_none=True) for h in d.health_checks or []
        ],
        "config_files": [
            c.model_dump(mode="json", exclude_none=True) for c in d.config_files or []
        ],
        "skip_cache": bool(d.skip_cache),
        "mesh": (d.mesh or "DEPLOYMENT_MESH_AUTO").replace("DEPLOYMENT_", "REGIONAL_DEPLOYMENT_"),
    }
    for source in ("docker", "git", "archive"):
        value = getattr(d, source)
        if value is not None:
            out[source] = value.model_dump(mode="json", exclude_none=True)
    return {k: v for k, v in out.items() if v is not None}
