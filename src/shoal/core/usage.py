"""Usage (pure): each instance's running seconds within a window, per calendar month, app,
service, region and instance type, as Koyeb's `/v1/usages` reports them, and their cost at
the seed's per-second prices.

An instance runs from its start to its end (now, while it runs), less the times it was
asleep and frozen (light sleep). A paused service, or one in deep sleep, has no instance
running, so its time is free.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from shoal.core.catalog import INSTANCE_TYPES


@dataclass(frozen=True)
class Lifetime:
    instance_id: str
    organization_id: str
    app_id: str
    app_name: str
    service_id: str
    service_name: str
    region: str
    deployment_id: str
    regional_deployment_id: str
    instance_type: str
    started_at: datetime
    terminated_at: datetime | None  # None: still running
    asleep: tuple[tuple[datetime, datetime | None], ...] = ()  # (from, to: None still)

    def seconds(self, start: datetime, end: datetime, now: datetime) -> int:
        """Whole seconds of its run within [start, end), its sleeps not counted."""
        stop = min(self.terminated_at or now, end)
        begin = max(self.started_at, start)
        awake = (stop - begin).total_seconds()
        counted = begin  # sleeps are merged: time asleep twice over is taken off once
        for slept_from, slept_to in sorted(self.asleep):
            start, end = max(slept_from, counted), min(slept_to or now, stop)
            if end > start:
                awake -= (end - start).total_seconds()
                counted = end
        return max(0, math.floor(awake))


def cost(seconds: int, instance_type: str) -> Decimal:
    itype = INSTANCE_TYPES.get(instance_type)
    return itype.price_per_second * seconds if itype else Decimal(0)


def months(start: datetime, end: datetime) -> list[tuple[str, datetime, datetime]]:
    """The calendar months (UTC) [start, end) spans: ("YYYY-MM", from, to) each."""
    out = []
    lo = start
    while lo < end:
        first = datetime(lo.year, lo.month, 1, tzinfo=UTC)
        if (lo.year, lo.month) == (datetime.max.year, 12):
            hi = end  # the calendar's last month
        else:
            hi = min(datetime(lo.year + lo.month // 12, lo.month % 12 + 1, 1, tzinfo=UTC), end)
        out.append((f"{first:%Y-%m}", lo, hi))
        lo = hi
    return out


def usage(
    organization_id: str,
    lifetimes: Iterable[Lifetime],
    start: datetime,
    end: datetime,
    now: datetime,
) -> dict[str, Any]:
    """Koyeb's `Usage`: periods (months) -> apps -> services -> regions -> instance types ->
    duration_seconds."""
    lives = list(lifetimes)
    periods: dict[str, Any] = {}
    for key, lo, hi in months(start, end):
        apps: dict[str, dict[str, Any]] = {}
        for life in sorted(lives, key=lambda x: (x.app_name, x.service_name, x.instance_id)):
            seconds = life.seconds(lo, hi, now)
            if not seconds:
                continue
            app = apps.setdefault(
                life.app_id,
                {"app_id": life.app_id, "app_name": life.app_name, "services": {}, "databases": []},
            )
            svc = app["services"].setdefault(
                life.service_id,
                {"service_id": life.service_id, "service_name": life.service_name, "regions": {}},
            )
            types = svc["regions"].setdefault(life.region, {"instances": {}})["instances"]
            types.setdefault(life.instance_type, {"duration_seconds": 0})
            types[life.instance_type]["duration_seconds"] += seconds
        periods[key] = {
            "starting_time": lo,
            "ending_time": hi,
            "apps": [{**a, "services": list(a["services"].values())} for a in apps.values()],
        }
    return {"organization_id": organization_id, "periods": periods}


def details(
    lifetimes: Iterable[Lifetime], start: datetime, end: datetime, now: datetime
) -> list[dict[str, Any]]:
    """Koyeb's `UsageDetails`: one row per instance that ran within [start, end)."""
    out = []
    for life in lifetimes:
        seconds = life.seconds(start, end, now)
        if seconds:
            out.append(
                {
                    "organization_id": life.organization_id,
                    "instance_id": life.instance_id,
                    "app_id": life.app_id,
                    "app_name": life.app_name,
                    "service_id": life.service_id,
                    "service_name": life.service_name,
                    "regional_deployment_id": life.regional_deployment_id,
                    "region": life.region,
                    "deployment_id": life.deployment_id,
                    "instance_type": life.instance_type,
                    "duration_seconds": seconds,
                    "started_at": life.started_at,
                    "terminated_at": life.terminated_at,
                }
            )
    return out
