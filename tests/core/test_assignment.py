"""An instance's assignment: the region's view, secrets resolved, PORT and KOYEB_* set."""

from __future__ import annotations

from shoal.core.assignment import Placement, build
from shoal.core.defaults import complete
from shoal.core.definition import DeploymentDefinition
from shoal.core.enums import InstanceStatus
from shoal.core.rollout import Desired


def test_env_ports_resources_and_checks():
    d = complete(
        DeploymentDefinition.model_validate(
            {
                "name": "web",
                "docker": {"image": "nginx", "command": "serve"},
                "regions": ["fra", "was"],
                "ports": [{"port": 9000}, {"port": 8080}],
                "instance_types": [{"type": "nano"}, {"type": "small", "scopes": ["region:was"]}],
                "env": [
                    {"key": "DB", "value": "pg://u:{{ secret.pw }}@db"},
                    {"key": "TOKEN", "secret": "tok"},
                    {"key": "WHERE", "value": "was!", "scopes": ["region:was"]},
                ],
            }
        ),
        "fra",
    )
    p = Placement(
        "i1",
        "o",
        "a",
        "shop",
        "s",
        "web",
        "d",
        "was",
        2,
        Desired.RUN,
        InstanceStatus.ALLOCATING,
        "shop-acme.localhost",
    )
    a = build(p, d, {"pw": "hunter2", "tok": "t0k"}, None)
    assert a.env["PORT"] == "8080"
    assert (
        a.env["DB"] == "pg://u:hunter2@db" and a.env["TOKEN"] == "t0k" and a.env["WHERE"] == "was!"
    )
    assert a.env["KOYEB_REGION"] == "was" and a.env["KOYEB_PUBLIC_DOMAIN"] == "shop-acme.localhost"
    assert (a.instance_type, a.vcpu, a.memory_mb) == ("small", 1, 1024)
    assert a.docker.command == "serve"
    assert sorted(h.tcp.port for h in a.health_checks) == [8080, 9000]
    assert a.hostname == "web-2"
