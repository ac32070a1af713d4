"""The one place that prints: resources as a Rich table, JSON or YAML on stdout; notes and
errors on stderr, so that stdout stays parseable."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

JSON = dict[str, Any]


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


@dataclass(frozen=True)
class Column:
    header: str
    get: Callable[[JSON], object]


def field(header: str, key: str) -> Column:
    return Column(header, lambda r: r.get(key, ""))


def short_id(header: str = "ID", key: str = "id") -> Column:
    """The first 8 characters, which the API accepts wherever it takes an id."""
    return Column(header, lambda r: str(r.get(key) or "")[:8])


def when(header: str = "CREATED", key: str = "created_at") -> Column:
    return Column(header, lambda r: str(r.get(key) or "")[:19].replace("T", " "))


def stderr() -> Console:
    # Made per call: Rich binds to the streams (and their terminal-ness) it sees when created.
    return Console(stderr=True, highlight=False, soft_wrap=True)


def emit(fmt: Format, data: Any) -> None:
    """Print `data` as JSON or YAML (the API's own JSON, unchanged)."""
    if fmt is Format.YAML:
        typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), nl=False)
    else:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def show(fmt: Format, data: JSON | list[JSON], columns: Sequence[Column]) -> None:
    """One resource or a list of them: the raw JSON/YAML, or a table of `columns`."""
    if fmt is not Format.TABLE:
        emit(fmt, data)
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for c in columns:
        table.add_column(c.header, overflow="fold")
    for row in data if isinstance(data, list) else [data]:
        table.add_row(*(str(c.get(row)) for c in columns))
    Console(highlight=False).print(table)


def note(message: str) -> None:
    stderr().print(message, markup=False)


def error(message: str, details: Sequence[str] = ()) -> None:
    console = stderr()
    console.print(f"Error: {message}", style="red", markup=False)
    for line in details:
        console.print(f"  {line}", markup=False)
