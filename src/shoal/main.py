"""Composition root: `shoal up` runs the whole platform in one process; the rest of the
`shoal` command line comes from `shoal.cli`.

The platform's parts are imported inside the commands that run them, so that every other
`shoal` command starts in a fraction of the time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from shoal.cli.main import app as cli
from shoal.core.catalog import DEFAULT_REGIONS, KNOWN_REGIONS

if TYPE_CHECKING:
    import uvicorn

    from shoal.store.db import Database

__all__ = ["cli", "prepare", "up"]

log = logging.getLogger("shoal")
ADMIN_TOKEN_FILE = "admin-token"
DEFAULT_DATA_DIR = Path("~/.local/share/shoal").expanduser()


def _host_port(value: str, option: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise typer.BadParameter(f"{value!r} is not HOST:PORT", param_hint=option)
    return host.strip("[]") or "127.0.0.1", int(port)


def _write_token(path: Path, token: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")


def _server(config: uvicorn.Config) -> uvicorn.Server:
    """uvicorn's server, minus its signal capture: `shoal up` handles SIGINT/SIGTERM itself
    and exits 0 after a clean stop (uvicorn would re-raise the signal and die by it)."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return Server(config)


def _request_exit(server: uvicorn.Server, sig: signal.Signals) -> None:
    log.info("%s: stopping", sig.name)
    server.should_exit = True


def prepare(data_dir: Path, database_url: str | None, org_name: str) -> Database:
    """Create the data dir, migrate the store, and on first start make the admin token."""
    from shoal.store import tenancy
    from shoal.store.db import Database, sqlite_url

    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    db = Database(database_url or sqlite_url(data_dir))
    db.migrate()
    with db.session() as s:
        token = tenancy.bootstrap(s, org_name)
    if token is not None:
        _write_token(data_dir / ADMIN_TOKEN_FILE, token)
        log.info(
            "created organization %r; admin token written to %s",
            org_name,
            data_dir / ADMIN_TOKEN_FILE,
        )
    return db


@cli.command()
def up(
    data_dir: Path = typer.Option(
        DEFAULT_DATA_DIR,
        envvar="SHOAL_DATA_DIR",
        help="Where the store, keys and the admin token live.",
    ),
    api_listen: str = typer.Option(
        "127.0.0.1:8130", envvar="SHOAL_API_LISTEN", help="HOST:PORT of the API."
    ),
    edge_listen: str = typer.Option(
        "127.0.0.1:8080", envvar="SHOAL_EDGE_LISTEN", help="HOST:PORT of the public edge."
    ),
    database_url: str | None = typer.Option(
        None, envvar="SHOAL_DATABASE_URL", help="postgresql://... (default: SQLite in the data dir)"
    ),
    regions: str = typer.Option(
        ",".join(DEFAULT_REGIONS),
        envvar="SHOAL_REGIONS",
        help="Comma-separated region ids this platform offers; the first is the default.",
    ),
    base_domain: str = typer.Option(
        "localhost", envvar="SHOAL_BASE_DOMAIN", help="Apps answer at <app>-<org>.<base domain>."
    ),
    org_name: str = typer.Option("default", help="Name of the organization made on first start."),
) -> None:
    """Run the platform in the foreground (Ctrl-C stops it cleanly)."""
    import uvicorn

    from shoal.api.app import create_api
    from shoal.api.deps import Platform
    from shoal.control.reconciler import Reconciler
    from shoal.store.secretbox import SecretBox, load_key

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    region_ids = tuple(r.strip() for r in regions.split(",") if r.strip())
    unknown = [r for r in region_ids if r not in KNOWN_REGIONS]
    if unknown or not region_ids:
        raise typer.BadParameter(
            f"unknown regions {unknown}; known: {', '.join(KNOWN_REGIONS)}", param_hint="--regions"
        )
    host, port = _host_port(api_listen, "--api-listen")
    _host_port(edge_listen, "--edge-listen")
    db = prepare(data_dir.expanduser(), database_url, org_name)
    reconciler = Reconciler(db)
    platform = Platform(
        db=db,
        box=SecretBox(load_key(data_dir.expanduser())),
        regions=region_ids,
        base_domain=base_domain,
        hint=reconciler.hint,
    )
    server = _server(
        uvicorn.Config(
            create_api(platform), host=host, port=port, log_level="warning", access_log=False
        )
    )
    log.info("API listening on http://%s:%d (regions: %s)", host, port, ", ".join(region_ids))
    log.warning(
        "the edge (%s) and instance runtime are not part of this build yet: "
        "deployments are stored and stay PENDING",
        edge_listen,
    )

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, _request_exit, server, sig)
        loop_task = asyncio.create_task(reconciler.run())
        try:
            await server.serve()
        finally:
            loop_task.cancel()
            db.dispose()
        log.info("stopped")

    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve())
