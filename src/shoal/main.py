"""Composition root: `shoal up` runs the whole platform in one process; the rest of the
`shoal` command line comes from `shoal.cli`.

The platform's parts are imported inside the commands that run them, so that every other
`shoal` command starts in a fraction of the time.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import grp
import logging
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from shoal.autoscale.policy import STABLE_S
from shoal.cli.main import app as cli
from shoal.core.catalog import DEFAULT_REGIONS, KNOWN_REGIONS

if TYPE_CHECKING:
    import uvicorn

    from shoal.api.deps import Platform
    from shoal.store.db import Database

__all__ = ["cli", "prepare", "up"]

log = logging.getLogger("shoal")
ADMIN_TOKEN_FILE = "admin-token"
AGENT_TOKEN_FILE = "agent-token"
# Longer than HAProxy keeps an idle connection to a server: it closes first, never the API.
HAPROXY_KEEP_ALIVE_S = 75
STOP_GRACE_S = 5  # for requests in flight to finish when the API stops
DEFAULT_API_PROCESSES = min(os.cpu_count() or 1, 4)
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


def _request_exit(
    server: uvicorn.Server, why: str, first: list[asyncio.Task[None]] | None = None
) -> None:
    """Stop the API server, once the `first` tasks (its children: their long polls would hold
    the server's stop) are over."""
    log.info("%s: stopping", why)

    async def stop() -> None:
        for t in first or ():
            t.cancel()
        await asyncio.gather(*first or (), return_exceptions=True)
        server.should_exit = True

    _stopping.add(asyncio.get_running_loop().create_task(stop()))


_stopping: set[asyncio.Task[None]] = set()  # a task the loop holds weakly must be held here


def _failed(
    task: asyncio.Task[None], server: uvicorn.Server, kids: list[asyncio.Task[None]]
) -> None:
    """A control loop ended other than by cancellation: say why and stop the platform (a
    supervisor starts it again), rather than serve on with nothing acting on what it says."""
    if task.cancelled():
        return
    log.critical("%s failed", task.get_name(), exc_info=task.exception())
    _request_exit(server, f"{task.get_name()} failed", kids)


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
        True, help="Run the node agents and the edge (--no-agents: the control plane alone)."
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
    autoscale_window: float = typer.Option(
        STABLE_S,
        envvar="SHOAL_AUTOSCALE_WINDOW",
        min=6.0,
        help="Seconds of load the autoscaler averages (its stable window); a burst is seen "
        "within a second or two whatever this is.",
    ),
    api_processes: int = typer.Option(
        DEFAULT_API_PROCESSES,
        envvar="SHOAL_API_PROCESSES",
        min=1,
        help="API processes (default: one per CPU, at most 4). Above 1, HAProxy listens on "
        "--api-listen and spreads reads over all of them; writes, agents and streams go to "
        "the first, which also runs the control loops.",
    ),
) -> None:
    """Run the platform in the foreground (Ctrl-C stops it cleanly; instances keep running
    and are adopted by the agents at the next start)."""
    from shoal.control.autoscaler import Autoscaler
    from shoal.control.git_watch import GitWatch
    from shoal.control.reconciler import Reconciler
    from shoal.supervise import Supervised

    _logging()
    region_ids = _regions(regions)
    host, port = _host_port(api_listen, "--api-listen")
    edge_host, edge_port = _host_port(edge_listen, "--edge-listen")
    data_dir = data_dir.expanduser().resolve()  # sandboxes start elsewhere than here
    db = prepare(data_dir, database_url, org_name)
    platform = _platform(data_dir, db, region_ids, base_domain, local_git)
    reconciler = Reconciler(db, notify_nodes=platform.nodes.notify)
    platform.hint = reconciler.hint
    # (Before _front, which makes a directory: a busy edge address stops everything first.)
    edge_ok = agents and _edge_possible(edge_host, edge_port, base_domain)
    front = _front(api_processes, host, port)
    server = _api_server(platform, front.primary if front else (host, port))
    api_url = f"http://{host}:{port}"
    log.info("API listening on %s (regions: %s)", api_url, ", ".join(region_ids))
    run_agents = agents and _can_run_instances()
    reader = ("api-reader", "--data-dir", str(data_dir), "--regions", ",".join(region_ids),
              "--base-domain", base_domain)  # fmt: skip
    # The database's URL may hold a password: in the environment, not on a command line.
    reader_env = {**os.environ, "SHOAL_DATABASE_URL": database_url or ""}

    def started() -> bool:
        return server.started

    children: list[tuple[Supervised, Callable[[], bool]]] = []
    if front is not None:
        children += [
            (Supervised(f"API reader {n}", _shoal(*reader, "--socket", p), reader_env), started)
            for n, p in enumerate(front.readers, 1)
        ]
        children.append((Supervised("HAProxy", front.command), front.ready))
    if edge_ok:
        edge = _shoal("edge", "--api", api_url, "--token-file", str(data_dir / AGENT_TOKEN_FILE),
                      "--listen", edge_listen, "--region", region_ids[0])  # fmt: skip
        children.append((Supervised("edge", edge), started))
    if run_agents:
        children += [
            (Supervised(f"agent for {r}", _agent(api_url, data_dir, r, n)), started)
            for n, r in enumerate(region_ids)
        ]

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        git_watch = GitWatch(db, reconciler.hint, git_poll_interval)
        scaler = Autoscaler(db, platform.metrics, reconciler.hint, autoscale_window)
        tasks = [
            asyncio.create_task(reconciler.run(), name="the control loop"),
            asyncio.create_task(git_watch.run(), name="the git watch"),
            asyncio.create_task(scaler.run(), name="the autoscaler"),
        ]
        kids = [asyncio.create_task(child.run(ready)) for child, ready in children]
        tasks += kids
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, _request_exit, server, sig.name, kids)
        loops = tasks[:3]
        for loop_task in loops:  # they run until cancelled: an end is a failure
            loop_task.add_done_callback(lambda t: _failed(t, server, kids))
        try:
            await server.serve()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            db.dispose()
            if front is not None:
                shutil.rmtree(front.run_dir, ignore_errors=True)
        log.info("stopped")
        if any(not t.cancelled() and t.exception() for t in loops):
            raise SystemExit(1)

    _run(serve())


@cli.command("api-reader", hidden=True)
def api_reader(
    data_dir: Path = typer.Option(..., help="The data dir of the `shoal up` it serves."),
    socket: Path = typer.Option(..., help="Unix socket to listen on (HAProxy's server)."),
    regions: str = typer.Option("fra"),
    base_domain: str = typer.Option("localhost"),
    database_url: str | None = typer.Option(None, envvar="SHOAL_DATABASE_URL"),
) -> None:
    """One more API process, for reads, behind the HAProxy of `shoal up` (which starts it)."""
    from shoal.store.db import Database, sqlite_url

    _logging()
    db = Database(database_url or sqlite_url(data_dir))  # `shoal up` made and migrated it
    server = _api_server(_platform(data_dir, db, _regions(regions), base_domain, False), socket)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, _request_exit, server, sig.name)
        try:
            await server.serve()
        finally:
            db.dispose()

    _run(serve())


def _platform(
    data_dir: Path, db: Database, region_ids: tuple[str, ...], base_domain: str, local_git: bool
) -> Platform:
    from shoal.api.deps import Platform
    from shoal.store.secretbox import SecretBox, load_key
    from shoal.store.tenancy import hash_token

    return Platform(
        db=db,
        box=SecretBox(load_key(data_dir)),
        # Offered: the seed's regions and the configured ones; placed: where agents run.
        regions=tuple(dict.fromkeys((*region_ids, *DEFAULT_REGIONS))),
        base_domain=base_domain,
        local_git=local_git,
        agent_token_hash=hash_token(_agent_token(data_dir)),
    )


def _api_server(platform: Platform, listen: tuple[str, int] | Path) -> uvicorn.Server:
    """The API on HOST:PORT, or on a Unix socket behind HAProxy."""
    import uvicorn

    from shoal.api.app import create_api
    from shoal.serving import Server

    where = (
        {"uds": str(listen), "timeout_keep_alive": HAPROXY_KEEP_ALIVE_S}
        if isinstance(listen, Path)
        else {"host": listen[0], "port": listen[1]}
    )
    return Server(
        uvicorn.Config(
            create_api(platform),
            log_level="warning",
            access_log=False,
            proxy_headers=False,  # the API takes no address from headers
            # Long polls (agents, the edge) would otherwise hold a stop for their whole wait.
            timeout_graceful_shutdown=STOP_GRACE_S,
            **where,  # type: ignore[arg-type]
        )
    )


@dataclass(frozen=True)
class _Front:
    """HAProxy on --api-listen in front of the API processes' Unix sockets."""

    run_dir: Path
    primary: Path
    readers: tuple[str, ...]
    command: list[str]

    def ready(self) -> bool:
        """The primary listens: HAProxy can start (it brings each reader in once it answers
        its health checks, and sends reads to the primary until then)."""
        return self.primary.exists()


def _front(processes: int, host: str, port: int) -> _Front | None:
    """HAProxy's configuration for `processes` API processes, written and checked; None for
    one process, or when HAProxy is missing (the API then runs in one process)."""
    from shoal.edge import haproxy, haproxy_config

    if processes < 2:
        return None
    binary = haproxy.binary()
    if binary is None:
        log.warning(
            "HAProxy is not installed: the API runs in one process, not %d (apt-get install "
            "haproxy)",
            processes,
        )
        return None
    _check_free(host, port)  # HAProxy binds it later, in a child that would only log why not
    run_dir = Path(tempfile.mkdtemp(prefix="shoal-api-"))  # short: a socket path's limit
    user = haproxy.account()
    if user is not None:  # HAProxy, once it drops to its account, still reaches the sockets
        os.chown(run_dir, 0, grp.getgrnam(user).gr_gid)
        run_dir.chmod(0o750)
    sockets = [str(run_dir / f"api-{n}.sock") for n in range(processes)]
    spec = haproxy_config.ApiFront(host, port, sockets[0], tuple(sockets[1:]))
    config = run_dir / "haproxy.cfg"
    config.write_text(haproxy_config.render(spec, str(run_dir / "haproxy.sock"), user))
    try:
        haproxy.check(binary, config)
    except ValueError as e:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise typer.BadParameter(f"HAProxy refuses its configuration: {e}") from e
    log.info("HAProxy spreads API reads over %d processes", processes)
    return _Front(run_dir, Path(sockets[0]), spec.readers, haproxy.command(binary, config))


def _edge_possible(host: str, port: int, base_domain: str) -> bool:
    """Whether `shoal up` can run its edge (HAProxy installed, its address free), saying why
    not when it cannot."""
    from shoal.edge import haproxy

    if haproxy.binary() is None:
        log.warning(
            "HAProxy is not installed: no edge, apps are not reachable (apt-get install haproxy)"
        )
        return False
    _check_free(host, port)
    log.info(
        "edge listening on %s:%d: apps answer at http://APP-ORG.%s:%d/",
        host,
        port,
        base_domain,
        port,
    )
    return True


def _check_free(host: str, port: int) -> None:
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise typer.BadParameter(f"cannot listen on {host}:{port}: {e.strerror}") from e


async def _until_signal(work: Coroutine[Any, Any, None]) -> None:
    """Run `work` until it ends or SIGINT/SIGTERM cancels it."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await work


def _run(main: Coroutine[Any, Any, None]) -> None:
    """Run a command's main coroutine on uvloop. Everything built before it (an app, its
    routes and models, the ORM's mappings) lives as long as the process: frozen out of the
    collector's sight, full collections stay short."""
    import uvloop

    gc.collect()
    gc.freeze()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


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


def _agent(api_url: str, data_dir: Path, region: str, index: int) -> list[str]:
    """`shoal agent` for one region of this machine."""
    return _shoal(
        "agent", "--api", api_url, "--region", region,
        "--token-file", str(data_dir / AGENT_TOKEN_FILE),
        "--data-dir", str(data_dir / "nodes" / region),
        "--images", str(data_dir / "nodes" / region / "images"),
        "--address-pool", f"100.{72 + index}.0.0/16",
    )  # fmt: skip


def _shoal(*args: str) -> list[str]:
    """The command line of a `shoal` subcommand, in a new process."""
    import sys

    return [sys.executable, "-m", "shoal", *args]


@cli.command()
def edge(
    api: str = typer.Option(..., help="URL of the control plane's API."),
    token_file: Path = typer.Option(..., help="File holding the agent token."),
    listen: str = typer.Option(
        "127.0.0.1:8080", envvar="SHOAL_EDGE_LISTEN", help="HOST:PORT apps answer on."
    ),
    region: str = typer.Option(
        "fra", help="The region of clients that do not say theirs (nor have a known address)."
    ),
    region_header: str = typer.Option(
        "X-Shoal-Region", help="Request header in which a client may name its region."
    ),
    region_sources: Path | None = typer.Option(
        None,
        envvar="SHOAL_EDGE_REGION_SOURCES",
        help="File of 'CIDR region' lines: the region of clients by address. Requests go to "
        "the closest region that has a healthy instance.",
    ),
) -> None:
    """Run the edge in the foreground: HAProxy on --listen, kept in step with the platform's
    route table (`shoal up` starts one by itself)."""
    from shoal.client.node import NodeClient
    from shoal.edge import haproxy
    from shoal.edge.edge import Edge
    from shoal.edge.haproxy_config import sources_map

    _logging()
    host, port = _host_port(listen, "--listen")
    _regions(region)
    if not re.fullmatch(r"[A-Za-z0-9-]+", region_header):
        raise typer.BadParameter("letters, digits and '-' only", param_hint="--region-header")
    try:
        text = region_sources.read_text() if region_sources else ""
        sources = sources_map(text, tuple(KNOWN_REGIONS))
    except (OSError, ValueError) as e:
        raise typer.BadParameter(f"{region_sources}: {e}", param_hint="--region-sources") from e
    binary = haproxy.binary()
    if binary is None:
        typer.echo("shoal edge: HAProxy is not installed (apt-get install haproxy)", err=True)
        raise typer.Exit(3)
    run_dir = Path(tempfile.mkdtemp(prefix="shoal-edge-"))
    client = NodeClient(api, token_file.read_text().strip())
    node = Edge(
        client, binary, run_dir, host, port, region, region_header, sources, haproxy.account()
    )

    async def run() -> None:
        try:
            await _until_signal(node.run())
        finally:
            await client.close()
            shutil.rmtree(run_dir, ignore_errors=True)

    _run(run())


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
    cpus: float = typer.Option(
        0.0,
        min=0.0,
        envvar="SHOAL_NODE_CPUS",
        help="vCPUs the node offers to instances (default: the machine's CPUs). More than "
        "the machine has overcommits: each instance still gets at most its type's share.",
    ),
    memory_mb: int = typer.Option(
        0,
        min=0,
        envvar="SHOAL_NODE_MEMORY_MB",
        help="Memory the node offers to instances (default: the machine's). More "
        "overcommits: each instance is still limited to its type's memory.",
    ),
) -> None:
    """Run a node agent in the foreground (`shoal up` starts one per region by itself)."""
    import socket

    from shoal.agent.agent import Agent
    from shoal.build.image import ImageStore
    from shoal.client.node import NodeClient
    from shoal.core.assignment import NodeHello
    from shoal.edge import haproxy
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
    run_dir = Path(tempfile.mkdtemp(prefix="shoal-agent-"))  # short: a Unix socket's path
    waker = run_dir / "waker.sock"
    hello = NodeHello(
        name=name or f"{socket.gethostname()}-{region}",
        region=region,
        cpus=cpus or float(os.cpu_count() or 1),
        memory_mb=memory_mb or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20,
        waker=str(waker),
    )
    client = NodeClient(api, token_file.read_text().strip())
    edge_account = haproxy.account()  # the edge's HAProxy wakes instances itself
    waker_group = grp.getgrnam(edge_account).gr_gid if edge_account else None
    node = Agent(client, driver, ImageStore(images), hello, data_dir, waker, waker_group)

    async def run() -> None:
        try:
            await _until_signal(node.run())
        finally:
            await client.close()
            shutil.rmtree(run_dir, ignore_errors=True)

    _run(run())
