"""The `shoal` command line: talks to the API only."""

from __future__ import annotations

import typer

app = typer.Typer(name="shoal", help="shoal: deploy apps on machines you control.", no_args_is_help=True)


@app.callback()
def main() -> None:
    """shoal: deploy apps on machines you control."""
