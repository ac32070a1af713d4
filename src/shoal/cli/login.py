"""`shoal login`: check a token against the API and remember it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from shoal.cli import config
from shoal.cli.output import note
from shoal.cli.state import state
from shoal.client import ShoalClient


def _token(given: str | None, token_file: Path | None, global_token: str | None) -> str:
    """--token, else --token-file, else the global --token / SHOAL_TOKEN, else stdin."""
    if given:
        return given
    if token_file is not None:
        return token_file.read_text().strip()
    if global_token:
        return global_token
    if sys.stdin.isatty():
        return str(typer.prompt("API token", hide_input=True)).strip()
    return sys.stdin.read().strip()


def login(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help=f"The API address (default: the global --url, else {config.DEFAULT_URL})",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", help="The API token (else --token-file, SHOAL_TOKEN, or stdin)."),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            exists=True,
            dir_okay=False,
            readable=True,
            help="Read the token from this file (such as DATA_DIR/admin-token).",
        ),
    ] = None,
) -> None:
    """Check a token with the API and save it, with the URL, in the config file (mode 0600)."""
    s = state(ctx)
    address = url or s.url or config.DEFAULT_URL
    secret = _token(token, token_file, s.token)
    if not secret:
        raise typer.BadParameter("the token is empty", param_hint="--token")
    with ShoalClient(address, secret) as c:
        c.check_token()
    path = config.save(config.Saved(address, secret))
    note(f"Logged in to {address}; saved in {path}")
