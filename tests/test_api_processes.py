"""`shoal up --api-processes 2`: HAProxy on the API's address, reads spread over both API
processes, writes (and what lives in the first process) on the first one.

Real processes throughout: `shoal up`, its read-only API process, HAProxy (Debian's)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import Shoal, start_shoal


@pytest.fixture
def shoal(tmp_path: Path, database_url: str) -> Iterator[Shoal]:
    """On SQLite and on PostgreSQL."""
    s = start_shoal(tmp_path / "data", database_url, "--api-processes", "2")
    yield s
    assert s.stop() == 0


def _reader(data_dir: Path) -> tuple[int, Path]:
    """(pid, socket) of the read-only API process serving `data_dir`."""
    out = subprocess.run(["pgrep", "-af", "shoal api-reader"], capture_output=True, text=True)
    for line in out.stdout.splitlines():
        if f"--data-dir {data_dir} " in line:
            m = re.search(r"--socket (\S+)", line)
            assert m, line
            return int(line.split()[0]), Path(m.group(1))
    raise AssertionError(f"no API reader for {data_dir}: {out.stdout}")


def _stats(stats_socket: Path) -> dict[str, dict[str, str]]:
    """HAProxy's statistics of each server ("backend/server" -> its columns)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(stats_socket))
        s.sendall(b"show stat\n")
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    lines = raw.decode().splitlines()
    head = lines[0].lstrip("# ").split(",")
    out = {}
    for line in lines[1:]:
        row = dict(zip(head, line.split(","), strict=False))
        if row.get("svname") not in ("FRONTEND", "BACKEND", None):
            out[f"{row['pxname']}/{row['svname']}"] = row
    return out


def _served(stats_socket: Path) -> dict[str, int]:
    """Requests each server answered."""
    return {name: int(row["stot"] or 0) for name, row in _stats(stats_socket).items()}


def test_reads_spread_over_processes_and_writes_stay_on_the_first(shoal: Shoal):
    _, sock = _reader(shoal.data_dir)
    stats = sock.parent / "haproxy.sock"
    deadline = time.monotonic() + 30  # HAProxy brings the reader in once it answers checks
    while _stats(stats)["api_reads/reader-1"]["status"] != "UP":
        assert time.monotonic() < deadline, _stats(stats)["api_reads/reader-1"]
        time.sleep(0.2)
    with shoal.client() as c:
        for n in range(20):
            # Each read follows a write: what one process wrote, the other reads at once.
            app = c.post("/v1/apps", json={"name": f"spread-{n}"}).json()["app"]
            assert c.get(f"/v1/apps/{app['id']}").json()["app"]["name"] == f"spread-{n}"
            assert c.get("/v1/apps", params={"limit": 100}).json()["count"] == n + 1
    served = _served(stats)
    assert served["api_primary/primary"] >= 20  # the writes
    assert served["api_reads/reader-1"] > 0
    assert served["api_reads/primary"] + served["api_reads/reader-1"] >= 40


def test_a_deleted_token_stops_working_on_every_process(shoal: Shoal):
    with shoal.client() as c:
        made = c.post("/v1/credentials", json={"name": "short-lived", "type": "ORGANIZATION"})
        assert made.status_code == 200, made.text
        token, cred_id = made.json()["credential"]["token"], made.json()["credential"]["id"]
    with shoal.client(token) as mine:
        for _ in range(10):  # both processes now trust it
            assert mine.get("/v1/apps").status_code == 200
        with shoal.client() as c:
            assert c.delete(f"/v1/credentials/{cred_id}").status_code == 200
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            codes = {mine.get("/v1/apps").status_code for _ in range(10)}
            if codes == {401}:
                break
            time.sleep(0.5)
        assert codes == {401}


def test_a_killed_reader_is_started_again_and_no_read_fails(shoal: Shoal):
    pid, _ = _reader(shoal.data_dir)
    with shoal.client() as c:
        app_id = c.post("/v1/apps", json={"name": "steady"}).json()["app"]["id"]
        failed = []
        for n in range(300):
            if n == 50:
                os.kill(pid, signal.SIGKILL)
            r = c.get(f"/v1/apps/{app_id}")
            if r.status_code != 200:
                failed.append((n, r.status_code, r.text[:200]))
        assert failed == []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            new_pid, _ = _reader(shoal.data_dir)
        except AssertionError:
            new_pid = pid
        if new_pid != pid:
            break
        time.sleep(0.2)
    assert new_pid != pid, "the API reader was not started again"


def test_websockets_pass_through_to_the_first_process(shoal: Shoal):
    """(The end-to-end tests tail logs and exec in instances through it too.)"""
    from websockets.sync.client import connect

    url = shoal.url.replace("http://", "ws://") + "/v1/streams/logs/tail?limit=many"
    with connect(url, additional_headers={"Authorization": f"Bearer {shoal.admin_token}"}) as ws:
        assert "error" in json.loads(ws.recv(timeout=10))  # an answer from the API, not a 502
