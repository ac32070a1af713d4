"""Real-component fixtures: a PostgreSQL server and `shoal up` processes, started here.

Store and API tests run against both SQLite and PostgreSQL (the `backend` parameter).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(cmd: list[str]) -> list[str]:
    # initdb refuses to run as root; the tests run the server as the postgres user then.
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """A PostgreSQL server on a free loopback port for the whole session; yields a URL base."""
    if not (PG_BIN / "initdb").exists():
        pytest.fail("PostgreSQL 15 is not installed: run scripts/install-system-deps")
    # Not under pytest's tmp dir: that is private to root, and the server runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="shoal-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
    subprocess.run(
        _as_postgres(
            [str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"]
        ),
        check=True,
        capture_output=True,
    )
    port = free_port()
    opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    subprocess.run(
        _as_postgres(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(data),
                "-w",
                "-l",
                str(root / "log"),
                "start",
                "-o",
                opts,
            ]
        ),
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


_db_counter = 0


def new_pg_database(base: str) -> str:
    """A fresh, empty database on the session's server."""
    global _db_counter
    _db_counter += 1
    name = f"shoal_{os.getpid()}_{_db_counter}"
    import psycopg

    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{base}/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'shoal.db'}"  # the default place
    return new_pg_database(request.getfixturevalue("postgres"))


@dataclass
class Shoal:
    """A running `shoal up` process."""

    url: str
    data_dir: Path
    proc: subprocess.Popen[bytes]
    log: Path
    edge: str = ""  # http://HOST:PORT of its edge

    @property
    def admin_token(self) -> str:
        return (self.data_dir / "admin-token").read_text().strip()

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.admin_token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)


def start_shoal(
    data_dir: Path,
    database_url: str | None = None,
    *extra: str,
    agents: bool = False,
    env: dict[str, str] | None = None,
) -> Shoal:
    """`shoal up` in a subprocess; the control plane alone unless `agents` (needs root);
    `env`: variables set for it besides this process's."""
    port, edge_port = free_port(), free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir.parent / f"{data_dir.name}-shoal.log"
    cmd = [
        sys.executable,
        "-m",
        "shoal",
        "up",
        "--data-dir",
        str(data_dir),
        "--api-listen",
        f"127.0.0.1:{port}",
        "--edge-listen",
        f"127.0.0.1:{edge_port}",
        # The control plane alone runs one API process (tests/test_api_processes.py runs more):
        # each more process is a second or two of start-up, for every test that starts one.
        *(["--agents"] if agents else ["--no-agents", "--api-processes", "1"]),
        *extra,
    ]
    if database_url:
        cmd += ["--database-url", database_url]
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"shoal up exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return Shoal(url, data_dir, proc, log, f"http://127.0.0.1:{edge_port}")
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"shoal up did not answer within 30 s:\n{log.read_text()}")


@pytest.fixture
def shoal(tmp_path: Path, database_url: str) -> Iterator[Shoal]:
    """`shoal up` on the backend under test (SQLite and PostgreSQL)."""
    s = start_shoal(tmp_path / "data", database_url)
    yield s
    s.stop()


@pytest.fixture
def api(shoal: Shoal) -> Iterator[httpx.Client]:
    """An API client holding the admin token of a fresh platform."""
    with shoal.client() as c:
        yield c


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Shoal]:
    """One `shoal up` per backend for the whole session; tests isolate by organization."""
    root = tmp_path_factory.mktemp(f"server-{request.param}")
    url = (
        None if request.param == "sqlite" else new_pg_database(request.getfixturevalue("postgres"))
    )
    s = start_shoal(root / "data", url)
    yield s
    s.stop()


_org_counter = 0


@pytest.fixture
def org_api(server: Shoal) -> Iterator[httpx.Client]:
    """A client for a fresh organization on the shared server (a user's view: nothing in it)."""
    global _org_counter
    _org_counter += 1
    with server.client() as admin:
        org = admin.post("/v1/organizations", json={"name": f"org-{_org_counter}"})
        org.raise_for_status()
        cred = admin.post(
            "/v1/credentials",
            json={"name": "test", "organization_id": org.json()["organization"]["id"]},
        )
        cred.raise_for_status()
    with server.client(cred.json()["credential"]["token"]) as c:
        yield c
