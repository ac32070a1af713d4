"""`shoal secrets ...`: simple secrets (a value) and registry secrets (credentials)."""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated, Any

import typer

from shoal.cli.output import Format, emit, field, note, short_id, show, when
from shoal.cli.state import client, output

app = typer.Typer(
    name="secrets",
    help="Secrets: values services reference as {{ secret.NAME }}.",
    no_args_is_help=True,
)


class SecretKind(StrEnum):
    SIMPLE = "simple"
    REGISTRY = "registry"


SecretArg = Annotated[str, typer.Argument(metavar="SECRET", help="Name, id or short id.")]
ValueFlag = Annotated[str | None, typer.Option("--value", help="The secret's value.")]
FromStdinFlag = Annotated[
    bool,
    typer.Option(
        "--value-from-stdin", help="Read the value from stdin (one trailing newline dropped)."
    ),
]
RegistryUrlFlag = Annotated[str | None, typer.Option("--registry-url", help="Registry address.")]
RegistryUserFlag = Annotated[str | None, typer.Option("--registry-username", help="Registry user.")]
RegistryPasswordFlag = Annotated[
    str | None, typer.Option("--registry-password", help="Registry password or token.")
]
COLUMNS = [short_id(), field("NAME", "name"), field("TYPE", "type"), when()]


def _payload(
    value: str | None, from_stdin: bool, url: str | None, username: str | None, password: str | None
) -> dict[str, Any]:
    """The value or registry part of a CreateSecret / UpdateSecret body."""
    if from_stdin:
        if value is not None:
            raise typer.BadParameter("give --value or --value-from-stdin, not both")
        value = sys.stdin.read().removesuffix("\n")
    registry = {
        k: v
        for k, v in (("url", url), ("username", username), ("password", password))
        if v is not None
    }
    if value is not None and registry:
        raise typer.BadParameter("a secret has a value or registry credentials, not both")
    return {"private_registry": registry} if registry else {"value": value}


@app.command()
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME")],
    kind: Annotated[
        SecretKind | None,
        typer.Option(
            "--type",
            help="simple or registry (default: registry with --registry-*, else simple)",
        ),
    ] = None,
    value: ValueFlag = None,
    value_from_stdin: FromStdinFlag = False,
    registry_url: RegistryUrlFlag = None,
    registry_username: RegistryUserFlag = None,
    registry_password: RegistryPasswordFlag = None,
) -> None:
    """Create a secret."""
    payload = _payload(value, value_from_stdin, registry_url, registry_username, registry_password)
    chosen = kind or (SecretKind.REGISTRY if "private_registry" in payload else SecretKind.SIMPLE)
    body = {"name": name, "type": chosen.name, **payload}
    show(output(ctx), client(ctx).create_secret(body), COLUMNS)


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """List secrets (never their values)."""
    show(output(ctx), client(ctx).list_secrets(), COLUMNS)


@app.command()
def get(ctx: typer.Context, ident: SecretArg) -> None:
    """Show a secret (not its value)."""
    show(output(ctx), client(ctx).get_secret(ident), COLUMNS)


@app.command()
def update(
    ctx: typer.Context,
    ident: SecretArg,
    value: ValueFlag = None,
    value_from_stdin: FromStdinFlag = False,
    registry_url: RegistryUrlFlag = None,
    registry_username: RegistryUserFlag = None,
    registry_password: RegistryPasswordFlag = None,
) -> None:
    """Replace a secret's value or registry credentials."""
    payload = _payload(value, value_from_stdin, registry_url, registry_username, registry_password)
    show(output(ctx), client(ctx).update_secret(ident, payload), COLUMNS)


@app.command()
def delete(ctx: typer.Context, ident: SecretArg) -> None:
    """Delete a secret."""
    client(ctx).delete_secret(ident)
    note(f"Secret {ident} deleted")


@app.command()
def reveal(ctx: typer.Context, ident: SecretArg) -> None:
    """Print a secret's value (a registry secret's credentials as JSON)."""
    value = client(ctx).reveal_secret(ident)
    fmt = output(ctx)
    if fmt is Format.TABLE and isinstance(value, str):
        typer.echo(value)
    else:
        emit(fmt, value if fmt is Format.TABLE else {"value": value})
