"""`shoal deployments ...`"""

from __future__ import annotations

from typing import Annotated

import typer

from shoal.cli.output import field, note, short_id, show, when
from shoal.cli.state import client, output

app = typer.Typer(
    name="deployments", help="Deployments: one per change of a service.", no_args_is_help=True
)

DeploymentArg = Annotated[str, typer.Argument(metavar="DEPLOYMENT", help="Id or short id.")]
COLUMNS = [
    short_id(),
    short_id("SERVICE", "service_id"),
    field("STATUS", "status"),
    field("VERSION", "version"),
    when(),
]


@app.command("list")
def list_(
    ctx: typer.Context,
    service: Annotated[
        str | None, typer.Option("--service", help="Only this service's (id or APP/SERVICE).")
    ] = None,
    app_: Annotated[str | None, typer.Option("--app", help="Only this app's (name or id).")] = None,
) -> None:
    """List deployments, newest first."""
    c = client(ctx)
    service_id = c.get_service(service)["id"] if service else None
    app_id = c.get_app(app_)["id"] if app_ else None
    show(output(ctx), c.list_deployments(app_id, service_id), COLUMNS)


@app.command()
def get(ctx: typer.Context, ident: DeploymentArg) -> None:
    """Show a deployment."""
    show(output(ctx), client(ctx).get_deployment(ident), COLUMNS)


@app.command()
def cancel(ctx: typer.Context, ident: DeploymentArg) -> None:
    """Cancel a deployment that has not been scheduled yet."""
    client(ctx).cancel_deployment(ident)
    note(f"Deployment {ident} canceled")
