"""`shoal instances ...`"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from shoal.cli.output import field, short_id, show, when
from shoal.cli.state import client, output
from shoal.cli.terminal import attach

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


@app.command("exec", context_settings={"allow_interspersed_args": False})
def exec_(
    ctx: typer.Context,
    args: Annotated[
        list[str],
        typer.Argument(
            metavar="[INSTANCE] COMMAND...",
            help="The instance (id or short id; none with --service), then the command.",
        ),
    ],
    service: Annotated[
        str | None,
        typer.Option(
            "--service", help="Run in one HEALTHY instance of this service (id or APP/SERVICE)."
        ),
    ] = None,
    tty: Annotated[
        bool | None,
        typer.Option(
            "--tty/--no-tty", help="Give the command a terminal (default: if stdin is one)."
        ),
    ] = None,
) -> None:
    """Run a command inside an instance, wired to this terminal; exits with its exit code.

    shoal instances exec 1a2b3c4d -- sh    |    shoal instances exec --service shop/web -- env
    """
    c = client(ctx)
    target, command = (c.get_service(service)["id"], args) if service else (args[0], args[1:])
    if command[:1] == ["--"]:  # after INSTANCE, options end there: `--` stays among the args
        command = command[1:]
    if not command:
        raise typer.BadParameter("give the command to run after the instance", param_hint="COMMAND")
    with_tty = sys.stdin.isatty() if tty is None else tty
    with c.exec(target, command, service=service is not None, tty=with_tty) as channel:
        code = attach(channel, with_tty)
    raise typer.Exit(code)
