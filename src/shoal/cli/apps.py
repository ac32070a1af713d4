"""`shoal apps ...`"""

from __future__ import annotations

from typing import Annotated

import typer

from shoal.cli.output import Column, field, note, short_id, show, when
from shoal.cli.state import client, output
from shoal.cli.wait import DEFAULT_TIMEOUT, DELETED, WaitFlag, WaitTimeout, wait_until

app = typer.Typer(
    name="apps", help="Apps: groups of services sharing a domain.", no_args_is_help=True
)

AppArg = Annotated[str, typer.Argument(metavar="APP", help="Name, id or short id.")]
COLUMNS = [
    short_id(),
    field("NAME", "name"),
    field("STATUS", "status"),
    Column("DOMAINS", lambda a: ", ".join(d["name"] for d in a.get("domains", []))),
    when(),
]


@app.command()
def create(ctx: typer.Context, name: Annotated[str, typer.Argument(metavar="NAME")]) -> None:
    """Create an app."""
    show(output(ctx), client(ctx).create_app(name), COLUMNS)


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """List apps."""
    show(output(ctx), client(ctx).list_apps(), COLUMNS)


@app.command()
def get(ctx: typer.Context, ident: AppArg) -> None:
    """Show an app."""
    show(output(ctx), client(ctx).get_app(ident), COLUMNS)


@app.command()
def update(
    ctx: typer.Context,
    ident: AppArg,
    name: Annotated[str, typer.Option("--name", help="The new name.")],
) -> None:
    """Rename an app (its domain follows the name)."""
    show(output(ctx), client(ctx).rename_app(ident, name), COLUMNS)


@app.command()
def delete(
    ctx: typer.Context,
    ident: AppArg,
    wait: WaitFlag = False,
    wait_timeout: WaitTimeout = DEFAULT_TIMEOUT,
) -> None:
    """Delete an app and all its services."""
    c = client(ctx)
    found = c.get_app(ident)
    c.delete_app(found["id"])
    note(f"App {found['name']} is being deleted")
    if wait:
        wait_until(f"app {found['name']}", lambda: c.get_app(found["id"]), DELETED, wait_timeout)


@app.command()
def pause(ctx: typer.Context, ident: AppArg) -> None:
    """Pause every service of an app."""
    client(ctx).pause_app(ident)
    note(f"App {ident} is pausing")


@app.command()
def resume(ctx: typer.Context, ident: AppArg) -> None:
    """Resume every service of an app."""
    client(ctx).resume_app(ident)
    note(f"App {ident} is resuming")
