"""`shoal catalog ...`: what the platform offers."""

from __future__ import annotations

import typer

from shoal.cli.output import Column, field, show
from shoal.cli.state import client, output

app = typer.Typer(name="catalog", help="Instance types and regions on offer.", no_args_is_help=True)

INSTANCE_COLUMNS = [
    field("ID", "id"),
    field("VCPU", "vcpu_shares"),
    field("MEMORY", "memory"),
    field("DISK", "disk"),
    field("PRICE/MONTH", "price_monthly"),
    Column("REGIONS", lambda t: ", ".join(t.get("regions", []))),
]
REGION_COLUMNS = [
    field("ID", "id"),
    field("NAME", "name"),
    Column("INSTANCE TYPES", lambda r: len(r.get("instances", []))),
]


@app.command()
def instances(ctx: typer.Context) -> None:
    """List instance types."""
    show(output(ctx), client(ctx).list_instance_types(), INSTANCE_COLUMNS)


@app.command()
def regions(ctx: typer.Context) -> None:
    """List the regions this platform offers."""
    show(output(ctx), client(ctx).list_regions(), REGION_COLUMNS)
