"""`shoal services logs`: a service's lines, its instances' output and the platform's own."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

import typer
import yaml

from shoal.cli.output import Format, note
from shoal.cli.state import client, output

QUERY_LIMIT = 1000  # the API's largest page
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class LogType(StrEnum):
    RUNTIME = "runtime"
    BUILD = "build"


def _since_start(value: str | None) -> str | None:
    """`30s`, `15m`, `2h` or `1d` ago, as the RFC 3339 time the API takes."""
    if value is None:
        return None
    found = re.fullmatch(r"(\d{1,5})([smhd])", value.strip())
    if found is None:
        raise typer.BadParameter(
            f"{value!r} is not a duration like 30s, 15m, 2h or 1d", param_hint="--since"
        )
    ago = timedelta(**{_UNITS[found[2]]: int(found[1])})
    return (datetime.now(UTC) - ago).isoformat()


def _print(fmt: Format, lines: Iterable[dict[str, Any]]) -> None:
    for line in lines:
        if fmt is Format.JSON:
            typer.echo(json.dumps(line, ensure_ascii=False))  # one object a line
        elif fmt is Format.YAML:
            typer.echo(yaml.safe_dump([line], sort_keys=False, allow_unicode=True), nl=False)
        else:
            labels = line.get("labels") or {}
            when = str(line.get("created_at") or "")[:19].replace("T", " ")
            instance = str(labels.get("instance_id") or "")[:8]
            typer.echo(f"[{when}] {instance} {labels.get('stream', ''):>6} - {line.get('msg', '')}")


def logs(
    ctx: typer.Context,
    ident: Annotated[str, typer.Argument(metavar="SERVICE", help="Id, short id or APP/SERVICE.")],
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="Keep printing new lines as they come.")
    ] = False,
    kind: Annotated[LogType, typer.Option("--type", help="runtime or build.")] = LogType.RUNTIME,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="DURATION",
            help="Lines from this long ago on: 30s, 15m, 2h, 1d (default: 15m; with -f, 24h).",
        ),
    ] = None,
) -> None:
    """Show a service's logs: its instances' stdout and stderr, and the platform's lines."""
    start = _since_start(since)
    c = client(ctx)
    filters = {"service_id": c.get_service(ident)["id"], "type": kind.value}
    if follow:
        with contextlib.suppress(KeyboardInterrupt):  # how one stops following
            _print(output(ctx), c.tail_logs(**filters, start=start))
        return
    reply = c.query_logs(**filters, start=start, order="desc", limit=QUERY_LIMIT)
    _print(output(ctx), reversed(reply.get("data") or []))
    if (reply.get("pagination") or {}).get("has_more"):
        note(f"Only the last {QUERY_LIMIT} lines: narrow with --since.")
