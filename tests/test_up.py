"""`shoal up`: first start, clean stop on SIGINT/SIGTERM, restart with everything kept."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from tests.conftest import free_port, start_shoal


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_clean_stop_and_restart_keeps_everything(tmp_path: Path, sig: int):
    data = tmp_path / "data"
    first = start_shoal(data)
    token = first.admin_token
    assert (data / "admin-token").stat().st_mode & 0o777 == 0o600
    assert data.stat().st_mode & 0o777 == 0o700
    with first.client() as c:
        app_id = c.post("/v1/apps", json={"name": "kept"}).json()["app"]["id"]
        c.post("/v1/secrets", json={"name": "pw", "value": "s3cret"})
    assert first.stop(sig) == 0

    second = start_shoal(data)
    try:
        assert second.admin_token == token  # made once, on first start only
        with second.client() as c:
            assert c.get(f"/v1/apps/{app_id}").json()["app"]["name"] == "kept"
            [secret] = c.get("/v1/secrets").json()["secrets"]
            assert c.post(f"/v1/secrets/{secret['id']}/reveal").json()["value"] == "s3cret"
    finally:
        second.stop()


def test_environment_variables_configure_it(tmp_path: Path):
    port = free_port()
    env = {
        **os.environ,
        "SHOAL_DATA_DIR": str(tmp_path / "env-data"),
        "SHOAL_API_LISTEN": f"127.0.0.1:{port}",
        "SHOAL_EDGE_LISTEN": f"127.0.0.1:{free_port()}",
        "SHOAL_API_PROCESSES": "1",  # the API listens itself, no HAProxy in front
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "shoal", "up", "--no-agents"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        token_file = tmp_path / "env-data" / "admin-token"
        deadline = time.monotonic() + 30
        status = None
        while status is None and time.monotonic() < deadline:
            try:
                status = httpx.get(
                    f"http://127.0.0.1:{port}/v1/apps",
                    headers={"Authorization": f"Bearer {token_file.read_text().strip()}"},
                ).status_code
            except (httpx.TransportError, FileNotFoundError):
                if proc.poll() is not None:
                    pytest.fail(proc.stdout.read().decode() if proc.stdout else "exited")
                time.sleep(0.05)
        assert status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_bad_options_are_refused_plainly(tmp_path: Path):
    r = subprocess.run(
        [sys.executable, "-m", "shoal", "up", "--data-dir", str(tmp_path), "--regions", "fra,mars"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "mars" in r.stderr
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "shoal",
            "up",
            "--data-dir",
            str(tmp_path),
            "--api-listen",
            "nowhere",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "HOST:PORT" in r.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run(
            [sys.executable, "-m", "shoal", "up", "--data-dir", str(tmp_path / "busy"),
             "--api-listen", f"127.0.0.1:{port}", "--api-processes", "2", "--no-agents"],
            capture_output=True,
            text=True,
            timeout=60,
        )  # fmt: skip
    assert r.returncode == 2
    assert "cannot listen on" in r.stderr


def test_a_killed_shoal_leaves_no_process_behind(tmp_path: Path):
    """SIGKILL gives `shoal up` no time to stop its children: they stop by themselves (an
    API reader, HAProxy), and the API's address is free for the next start."""
    data = tmp_path / "data"
    shoal = start_shoal(data, None, "--api-processes", "2")
    port = int(shoal.url.rsplit(":", 1)[1])

    def left() -> list[str]:
        out = subprocess.run(["pgrep", "-af", str(data)], capture_output=True, text=True).stdout
        return [line for line in out.splitlines() if "pgrep" not in line]

    assert left()  # the API reader
    assert shoal.stop(signal.SIGKILL) == -signal.SIGKILL
    deadline = time.monotonic() + 20
    while left() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left() == []
    while time.monotonic() < deadline:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                break
            except OSError:
                time.sleep(0.1)
    else:
        raise AssertionError(f"127.0.0.1:{port} still taken")
