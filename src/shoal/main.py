"""Composition root: `shoal up` runs the whole platform in one process; the rest of the
`shoal` command line comes from `shoal.cli`.

The platform's parts are imported inside the commands that run them, so that every other
`shoal` command starts in a fraction of the time.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
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
AGENT_TOKEN_FILE = "agent-token"
AGENT_RESTART_S = 1.0
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
        "fra",
        envvar="SHOAL_REGIONS",
        help="Comma-separated regions this machine runs instances for, one node agent each; "
        "the first is the default region of new services.",
    ),
    agents: bool = typer.Option(
        True, help="Run the node agents (--no-agents: the control plane alone)."
    ),
    base_domain: str = typer.Option(
        "localhost", envvar="SHOAL_BASE_DOMAIN", help="Apps answer at <app>-<org>.<base domain>."
    ),
    org_name: str = typer.Option("default", help="Name of the organization made on first start."),
    local_git: bool = typer.Option(
        False,
        envvar="SHOAL_LOCAL_GIT",
        help="Let services build git repositories on this machine's disk (paths, file://): "
        "for a platform with one operator only, as any tenant could build any repository here.",
    ),
    git_poll_interval: float = typer.Option(
        60.0,
        envvar="SHOAL_GIT_POLL_INTERVAL",
        min=1.0,
        help="Seconds between two looks at each tracked git branch (deploy on push without "
        "a webhook).",
    ),
) -> None:
    """Run the platform in the foreground (Ctrl-C stops it cleanly; instances keep running
    and are adopted by the agents at the next start)."""
    import uvicorn
    import uvloop

    from shoal.api.app import create_api
    from shoal.api.deps import Platform
    from shoal.control.git_watch import GitWatch
    from shoal.control.reconciler import Reconciler
    from shoal.store.secretbox import SecretBox, load_key
    from shoal.store.tenancy import hash_token

    _logging()
    region_ids = _regions(regions)
    host, port = _host_port(api_listen, "--api-listen")
    _host_port(edge_listen, "--edge-listen")
    data_dir = data_dir.expanduser().resolve()  # sandboxes start elsewhere than here
    db = prepare(data_dir, database_url, org_name)
    agent_token = _agent_token(data_dir)
    platform = Platform(
        db=db,
        box=SecretBox(load_key(data_dir)),
        # Offered: the seed's regions and the configured ones; placed: where agents run.
        regions=tuple(dict.fromkeys((*region_ids, *DEFAULT_REGIONS))),
        base_domain=base_domain,
        local_git=local_git,
        agent_token_hash=hash_token(agent_token),
    )
    reconciler = Reconciler(db, notify_nodes=platform.nodes.notify)
    platform.hint = reconciler.hint
    server = _server(
        uvicorn.Config(
            create_api(platform),
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            proxy_headers=False,  # the API is reached directly; the edge sets its own headers
        )
    )
    api_url = f"http://{host}:{port}"
    log.info("API listening on %s (regions: %s)", api_url, ", ".join(region_ids))
    log.warning("the edge (%s) is not part of this build yet", edge_listen)
    run_agents = agents and _can_run_instances()

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, _request_exit, server, sig)
        git_watch = GitWatch(db, reconciler.hint, git_poll_interval)
        tasks = [asyncio.create_task(reconciler.run()), asyncio.create_task(git_watch.run())]
        if run_agents:
            tasks += [
                asyncio.create_task(_supervise_agent(api_url, data_dir, r, n, server))
                for n, r in enumerate(region_ids)
            ]
        try:
            await server.serve()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            db.dispose()
        log.info("stopped")

    # Everything built so far (the app, its routes and models, the ORM's mappings) lives as
    # long as the process: out of the collector's sight, full collections stay short.
    gc.collect()
    gc.freeze()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve())


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")


def _regions(value: str) -> tuple[str, ...]:
    region_ids = tuple(dict.fromkeys(r.strip() for r in value.split(",") if r.strip()))
    unknown = [r for r in region_ids if r not in KNOWN_REGIONS]
    if unknown or not region_ids:
        raise typer.BadParameter(
            f"unknown regions {unknown}; known: {', '.join(KNOWN_REGIONS)}", param_hint="--regions"
        )
    return region_ids


def _agent_token(data_dir: Path) -> str:
    """The token node agents present (`DATA_DIR/agent-token`, made on first start)."""
    import secrets

    path = data_dir / AGENT_TOKEN_FILE
    if not path.exists():
        _write_token(path, "shoal_agent_" + secrets.token_urlsafe(32))
    return path.read_text().strip()


def _can_run_instances() -> bool:
    from shoal.runtime.driver import SandboxUnavailable
    from shoal.runtime.sandbox import require_privileges

    try:
        require_privileges()
    except SandboxUnavailable as e:
        log.warning("no node agents: %s. The API works; instances cannot run here.", e)
        return False
    return True


async def _supervise_agent(
    api_url: str, data_dir: Path, region: str, index: int, server: uvicorn.Server
) -> None:
    """Run `shoal agent` for one region as its own process, and start it again if it dies
    (its instances live on and are adopted)."""
    import sys

    while not server.started:
        await asyncio.sleep(0.05)
    cmd = [
        sys.executable, "-m", "shoal", "agent", "--api", api_url, "--region", region,
        "--token-file", str(data_dir / AGENT_TOKEN_FILE),
        "--data-dir", str(data_dir / "nodes" / region),
        "--images", str(data_dir / "nodes" / region / "images"),
        "--address-pool", f"100.{72 + index}.0.0/16",
    ]  # fmt: skip
    while True:
        proc = await asyncio.create_subprocess_exec(*cmd)
        try:
            code = await proc.wait()
        except asyncio.CancelledError:
            if proc.returncode is None:
                proc.terminate()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 10)
            raise
        log.warning("agent for %s exited with %s; starting it again", region, code)
        await asyncio.sleep(AGENT_RESTART_S)


@cli.command()
def agent(
    api: str = typer.Option(..., help="URL of the control plane's API."),
    region: str = typer.Option(..., help="The region this node serves."),
    token_file: Path = typer.Option(..., help="File holding the agent token."),
    data_dir: Path = typer.Option(..., help="This node's state: sandboxes, log offsets."),
    images: Path = typer.Option(
        ..., help="Image cache (may be shared by the agents of a machine)."
    ),
    address_pool: str = typer.Option("100.72.0.0/16", help="Private addresses for instances."),
    name: str = typer.Option("", help="Node name (default: HOSTNAME-REGION)."),
) -> None:
    """Run a node agent in the foreground (`shoal up` starts one per region by itself)."""
    import socket

    import uvloop

    from shoal.agent.agent import Agent
    from shoal.build.image import ImageStore
    from shoal.client.node import NodeClient
    from shoal.core.assignment import NodeHello
    from shoal.runtime.driver import SandboxUnavailable
    from shoal.runtime.sandbox import SandboxDriver

    _logging()
    _regions(region)
    data_dir, images = data_dir.expanduser().resolve(), images.expanduser().resolve()
    try:
        driver = SandboxDriver(
            data_dir / "runtime", address_pool=address_pool, cgroup_parent=f"shoal-{region}"
        )
    except SandboxUnavailable as e:
        typer.echo(f"shoal agent: {e}", err=True)
        raise typer.Exit(3) from e
    hello = NodeHello(
        name=name or f"{socket.gethostname()}-{region}",
        region=region,
        cpus=float(os.cpu_count() or 1),
        memory_mb=os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20,
    )
    client = NodeClient(api, token_file.read_text().strip())
    node = Agent(client, driver, ImageStore(images), hello, data_dir)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await node.run()
        await client.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run())
