"""`shoal instances ...`"""

from __future__ import annotations

from typing import Annotated

import typer

from shoal.cli.output import field, short_id, show, when
from shoal.cli.state import client, output

app = typer.Typer(
    name="instances", help="Instances: the running copies of a deployment.", no_args_is_help=True
)

COLUMNS = [
    short_id(),
    short_id("SERVICE", "service_id"),
    field("REGION", "region"),
    field("TYPE", "type"),
    field("STATUS", "status"),
    when(),
]


@app.command("list")
def list_(
    ctx: typer.Context,
    service: Annotated[
        str | None, typer.Option("--service", help="Only this service's (id or APP/SERVICE).")
    ] = None,
) -> None:
    """List instances, newest first."""
    c = client(ctx)
    service_id = c.get_service(service)["id"] if service else None
    show(output(ctx), c.list_instances(service_id), COLUMNS)


@app.command()
def get(
    ctx: typer.Context,
    ident: Annotated[str, typer.Argument(metavar="INSTANCE", help="Id or short id.")],
) -> None:
    """Show an instance."""
    show(output(ctx), client(ctx).get_instance(ident), COLUMNS)
