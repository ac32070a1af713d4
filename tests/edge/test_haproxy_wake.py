"""HAProxy wakes a sleeping instance itself (edge/wake.lua): a real HAProxy on the edge's
configuration, the agent's real wake socket, a real HTTP server as the instance. The instance
tasks behind the socket are stand-ins that only say whether they woke (tests/e2e/test_sleep.py
wakes real frozen and stopped instances), and the activator is a stand-in that only says it
answered (its own logic is tested end to end there too)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import shutil
import socket
import socketserver
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.agent.test_waker import Task
from tests.e2e.test_edge import until

from shoal.agent.waker import Waker
from shoal.edge import haproxy
from shoal.edge import haproxy_config as config
from shoal.edge.activator import ROUTE_HEADER

pytestmark = pytest.mark.skipif(haproxy.binary() is None, reason="HAProxy is not installed")


class Says(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        says = self.server.says  # type: ignore[attr-defined]
        if ROUTE_HEADER in self.headers:  # for the activator alone
            says += " (told the route)"
        body = says.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        conn, _ = super().get_request()
        return conn, ("unix", 0)  # http.server wants a host and port to log


def serving(server: socketserver.BaseServer, says: str) -> socketserver.BaseServer:
    server.says = says  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def cancel_all() -> None:
    others = asyncio.all_tasks() - {asyncio.current_task()}
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)


@pytest.fixture
def agent_dir() -> Iterator[Path]:
    where = Path(tempfile.mkdtemp(prefix="shoal-agent-"))  # short: a Unix socket's path
    yield where
    shutil.rmtree(where, ignore_errors=True)


def test_haproxy_wakes_the_sleeper_and_sends_the_request_to_it(tmp_path: Path, agent_dir: Path):
    tasks: dict[str, Any] = {"sleeps": Task(True), "stuck": Task(False), "awake": Task(True)}
    loop = asyncio.new_event_loop()
    waker = agent_dir / "waker.sock"
    threading.Thread(target=loop.run_forever, daemon=True).start()
    asyncio.run_coroutine_threadsafe(Waker(waker, lambda: tasks).serve(), loop)
    until("the wake socket", waker.exists)

    instance = serving(ThreadingHTTPServer(("127.0.0.1", 0), Says), "instance")
    address, port = instance.server_address[:2]
    activator = serving(UnixHTTPServer(str(tmp_path / "activator.sock"), Says), "activator")
    logged = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    logged.bind(str(tmp_path / "requests.sock"))

    routes = {"a.x": "r-a", "b.x": "r-b", "c.x": "r-c"}
    (tmp_path / "routes.map").write_text(
        config.route_map(
            [(config.map_key("fra", host, "/"), backend) for host, backend in routes.items()]
        )
    )
    (tmp_path / "sources.map").write_text("")
    entries = {
        "r-a": config.sleeper(str(waker), "sleeps", str(address), int(port)),
        "r-b": config.sleeper(str(waker), "stuck", str(address), int(port)),
        "r-c": config.sleeper(str(waker), "awake", str(address), int(port)),  # (it has a server)
    }
    (tmp_path / "sleepers.map").write_text(
        config.route_map([(b, str(e)) for b, e in entries.items()])
    )
    edge_port = free_port()
    edge_cfg = tmp_path / "edge.cfg"
    edge_cfg.write_text(
        config.render_edge(
            "127.0.0.1",
            edge_port,
            [
                (config.Backend("r-a", "/", False, "svc-a"), []),
                (config.Backend("r-b", "/", False, "svc-b"), []),
                (
                    config.Backend("r-c", "/", False, "svc-c"),
                    [config.server_line("awake", address, port, False)],
                ),
            ],
            str(tmp_path / "routes.map"),
            config.ClientRegion(("fra",), "fra", "X-Shoal-Region", str(tmp_path / "sources.map")),
            str(tmp_path / "edge.sock"),
            str(tmp_path / "requests.sock"),
            str(tmp_path / "activator.sock"),
            str(tmp_path / "sleepers.map"),
        )
    )
    binary = haproxy.binary()
    assert binary
    proxy = subprocess.Popen(haproxy.command(binary, edge_cfg), stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{edge_port}/"

    def ask(host: str) -> str:
        return httpx.get(url, headers={"Host": host}, timeout=10).text

    try:
        until("HAProxy", lambda: (tmp_path / "edge.sock").exists())
        assert ask("a.x") == "instance"  # woken, then straight to it
        assert tasks["sleeps"].asked == 1
        assert ask("b.x") == "activator (told the route)"  # not woken: the activator's turn
        assert tasks["stuck"].asked == 1
        assert ask("c.x") == "instance"  # a backend with a server: nobody is woken
        assert [t.asked for t in tasks.values()] == [1, 1, 0]

        # A burst while the wake is asked: each request waits for its own answer, none lost.
        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(ask, ["a.x"] * 20))
        assert answers == ["instance"] * 20
        assert tasks["sleeps"].asked == 21

        # The edge's runtime changes: the route's pool has a server again, then sleeps again.
        def change(line: str) -> None:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(tmp_path / "edge.sock"))
                s.sendall(line.encode() + b"\n")
                assert s.recv(4096).strip() == b"", line

        change(f"del map {tmp_path / 'sleepers.map'} r-a")
        assert ask("a.x") == "activator (told the route)"  # (the stand-in has no server for it)
        assert tasks["sleeps"].asked == 21
        change(f"add map {tmp_path / 'sleepers.map'} r-a {entries['r-a']}")
        assert ask("a.x") == "instance"
        assert tasks["sleeps"].asked == 22
    finally:
        proxy.terminate()
        _, errors = proxy.communicate(timeout=10)
        asyncio.run_coroutine_threadsafe(cancel_all(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        instance.shutdown()
        activator.shutdown()
        logged.close()
    assert b"Lua" not in errors, errors.decode()  # no error in the action
