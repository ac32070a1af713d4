"""The `shoal` command line: talks to the API only."""

from __future__ import annotations

from typing import Annotated

import typer

from shoal.cli import apps, catalog, deployments, instances, secrets, services
from shoal.cli.config import DEFAULT_URL
from shoal.cli.deploy import deploy
from shoal.cli.exits import EPILOG, ExitCodeGroup
from shoal.cli.login import login
from shoal.cli.output import Format
from shoal.cli.state import State
from shoal.cli.usage import usage

app = typer.Typer(
    name="shoal",
    cls=ExitCodeGroup,
    epilog=EPILOG,
    no_args_is_help=True,
    help="shoal: deploy apps on machines you control.",
)


@app.callback()
def main(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            envvar="SHOAL_URL",
            help=f"The API address (default: saved by `shoal login`, else {DEFAULT_URL})",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token", envvar="SHOAL_TOKEN", help="The API token (default: saved by `shoal login`)"
        ),
    ] = None,
    output: Annotated[
        Format, typer.Option("-o", "--output", help="table, or the API's JSON as json or yaml.")
    ] = Format.TABLE,
) -> None:
    """shoal: deploy apps on machines you control."""
    ctx.obj = State(url, token, output)


app.command()(login)
app.command()(deploy)
app.command()(usage)
for group in (apps, services, deployments, instances, secrets, catalog):
    app.add_typer(group.app)
