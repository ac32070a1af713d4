"""`shoal usage`: the organization's running seconds, and what they cost at the platform's
per-second prices."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import typer

from shoal.cli.output import Format, emit, field, show
from shoal.cli.state import client, output
from shoal.core.usage import cost

COLUMNS = [
    field("PERIOD", "period"),
    field("APP", "app"),
    field("SERVICE", "service"),
    field("REGION", "region"),
    field("TYPE", "type"),
    field("SECONDS", "seconds"),
    field("COST ($)", "cost"),
]


def rows(usage: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per period, app, service, region and instance type, and a total."""
    out: list[dict[str, Any]] = []
    total = Decimal(0)
    for period, body in sorted(usage.get("periods", {}).items()):
        for app in body.get("apps", []):
            for svc in app.get("services", []):
                for region, types in sorted(svc.get("regions", {}).items()):
                    for itype, used in sorted(types.get("instances", {}).items()):
                        seconds = int(used.get("duration_seconds", 0))
                        price = cost(seconds, itype)
                        total += price
                        out.append(
                            {
                                "period": period,
                                "app": app.get("app_name", ""),
                                "service": svc.get("service_name", ""),
                                "region": region,
                                "type": itype,
                                "seconds": seconds,
                                "cost": f"{price:.6f}",
                            }
                        )
    out.append({"period": "total", "app": "", "service": "", "region": "", "type": "",
                "seconds": sum(r["seconds"] for r in out), "cost": f"{total:.6f}"})  # fmt: skip
    return out


def usage(
    ctx: typer.Context,
    starting_time: Annotated[
        str | None, typer.Option("--from", help="Start (ISO 8601; default: this month's start).")
    ] = None,
    ending_time: Annotated[str | None, typer.Option("--to", help="End (default: now).")] = None,
) -> None:
    """Running seconds per app, service, region and instance type, and their cost."""
    found = client(ctx).usage(starting_time, ending_time)
    fmt = output(ctx)
    if fmt is not Format.TABLE:
        emit(fmt, found)
        return
    show(fmt, rows(found), COLUMNS)
