"""Service and app statuses as the seed defines them, derived from facts."""

from __future__ import annotations

import pytest

from shoal.core.enums import AppStatus as S
from shoal.core.enums import DeploymentStatus as D
from shoal.core.status import Intent, ServiceFacts, app_status, service_status


def facts(intent=Intent.RUN, resuming=False, live=0, active=None, latest=None) -> ServiceFacts:
    return ServiceFacts(intent, resuming, live, active, latest)


@pytest.mark.parametrize(
    ("f", "expected"),
    [
        (facts(latest=D.PENDING), S.STARTING),
        (facts(latest=D.PROVISIONING), S.STARTING),
        (facts(latest=D.ERROR), S.UNHEALTHY),
        (facts(latest=D.CANCELED), S.UNHEALTHY),
        (facts(active=D.HEALTHY, latest=D.HEALTHY), S.HEALTHY),
        (facts(active=D.HEALTHY, latest=D.STARTING), S.HEALTHY),
        (facts(active=D.HEALTHY, latest=D.ERROR), S.DEGRADED),
        (facts(active=D.DEGRADED, latest=D.DEGRADED), S.DEGRADED),
        (facts(active=D.UNHEALTHY, latest=D.UNHEALTHY), S.UNHEALTHY),
        (facts(active=D.SLEEPING, latest=D.SLEEPING), S.HEALTHY),
        (facts(intent=Intent.PAUSE, live=2), S.PAUSING),
        (facts(intent=Intent.PAUSE, live=0, active=D.HEALTHY), S.PAUSED),
        (facts(intent=Intent.DELETE, live=0), S.DELETING),
        (facts(resuming=True, latest=D.STARTING), S.RESUMING),
    ],
)
def test_service_status(f, expected):
    assert service_status(f) == expected


@pytest.mark.parametrize(
    ("deleting", "services", "expected"),
    [
        (False, [], S.HEALTHY),
        (True, [S.HEALTHY], S.DELETING),
        (False, [S.PAUSED, S.PAUSED], S.PAUSED),
        (False, [S.PAUSED, S.HEALTHY], S.HEALTHY),
        (False, [S.PAUSING, S.HEALTHY], S.PAUSING),
        (False, [S.STARTING, S.HEALTHY], S.STARTING),
        (False, [S.UNHEALTHY], S.UNHEALTHY),
        (False, [S.UNHEALTHY, S.HEALTHY], S.DEGRADED),
        (False, [S.DEGRADED, S.HEALTHY], S.DEGRADED),
    ],
)
def test_app_status(deleting, services, expected):
    assert app_status(deleting, services) == expected
