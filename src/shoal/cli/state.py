"""What the global options decide, shared by every command through the Click context."""

from __future__ import annotations

from dataclasses import dataclass

import typer

from shoal.cli import config
from shoal.cli.output import Format
from shoal.client import ShoalClient


@dataclass
class State:
    url: str | None  # from --url or SHOAL_URL; None falls back to the config file
    token: str | None  # from --token or SHOAL_TOKEN; likewise
    output: Format
    client: ShoalClient | None = None


def state(ctx: typer.Context) -> State:
    found = ctx.find_object(State)
    if found is None:
        raise RuntimeError("the shoal callback did not run")
    return found


def client(ctx: typer.Context) -> ShoalClient:
    """The API client, made on first use (closed when the command ends)."""
    s = state(ctx)
    if s.client is None:
        saved = config.load()
        made = ShoalClient(s.url or saved.url or config.DEFAULT_URL, s.token or saved.token)
        s.client = ctx.find_root().with_resource(made)
    return s.client


def output(ctx: typer.Context) -> Format:
    return state(ctx).output
