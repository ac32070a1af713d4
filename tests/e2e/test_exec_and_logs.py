"""Exec and logs, end to end: commands run inside a real instance over Koyeb's WebSocket
(stdin, stdout, a tty, the exit code; another organization is refused), and the `shoal` CLI's
`services logs` and `instances exec` against the same platform."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import pty
import queue
import select
import struct
import subprocess
import sys
import termios
import threading
import time
from dataclasses import dataclass, field
from typing import IO, Any

import pytest
from tests.conftest import Shoal
from tests.e2e.conftest import push_web_image
from tests.e2e.test_service_lifecycle import definition, until
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

GREETING = "app says hello"


@dataclass(frozen=True)
class Deployed:
    service_id: str
    instance_id: str


@pytest.fixture(scope="module")
def deployed(
    platform: Shoal, registry, image_builder, tmp_path_factory: pytest.TempPathFactory
) -> Deployed:
    """A busybox web service, HEALTHY, whose process says GREETING as it starts."""
    image = push_web_image(
        image_builder, registry, tmp_path_factory.mktemp("exec"), "execs", "index of execs"
    )
    spec = definition(image)
    spec["docker"].update(
        entrypoint=["/bin/sh", "-c"],
        args=[f"echo {GREETING}; exec /bin/busybox httpd -f -v -p 8000 -h /www"],
    )
    with platform.client() as api:
        app = api.post("/v1/apps", json={"name": "execs"}).json()["app"]
        created = api.post("/v1/services", json={"app_id": app["id"], "definition": spec})
        assert created.status_code == 200, created.text
        service_id = created.json()["service"]["id"]

        def healthy() -> list[str]:
            listing = api.get("/v1/instances", params={"service_id": service_id}).json()
            return [i["id"] for i in listing["instances"] if i["status"] == "HEALTHY"]

        [instance_id] = until("a HEALTHY instance", healthy)
    return Deployed(service_id, instance_id)


@dataclass
class Outcome:
    stdout: bytes = b""
    stderr: bytes = b""
    exit_code: int | None = None
    error: dict[str, Any] = field(default_factory=dict)


def run(
    shoal: Shoal,
    token: str,
    target: str,
    command: list[str],
    *,
    id_type: str = "INSTANCE_ID",
    tty: bool = False,
    stdin: bytes | None = None,
) -> Outcome:
    """One exec session, as Koyeb's clients speak it: the token as a subprotocol, the command
    in the first frame, then `stdin` (closed after) if given."""
    url = shoal.url.replace("http://", "ws://") + "/v1/streams/instances/exec"
    frames = [
        {"id": target, "idType": id_type, "body": {"command": command, "disableTty": not tty}}
    ]
    if stdin is not None:
        frames.append(
            {"body": {"stdin": {"data": base64.b64encode(stdin).decode(), "close": True}}}
        )
    outcome = Outcome()
    with connect(url, subprotocols=["Bearer", token]) as ws:  # type: ignore[list-item]
        with contextlib.suppress(ConnectionClosed):  # refused at once: the reason still comes
            for frame in frames:
                ws.send(json.dumps(frame))
        while True:
            reply = json.loads(ws.recv(timeout=30))
            if "error" in reply:
                outcome.error = reply["error"]
                return outcome
            result = reply["result"]
            outcome.stdout += base64.b64decode((result.get("stdout") or {}).get("data", ""))
            outcome.stderr += base64.b64decode((result.get("stderr") or {}).get("data", ""))
            if result["exited"]:
                outcome.exit_code = result["exit_code"]
                return outcome


def test_exec_runs_commands_in_the_instance(platform: Shoal, deployed: Deployed):
    token = platform.admin_token
    cat = run(platform, token, deployed.instance_id, ["cat", "/www/index.html"])
    assert (cat.stdout, cat.exit_code, cat.error) == (b"index of execs", 0, {})

    asked = run(
        platform,
        token,
        deployed.instance_id,
        ["sh", "-c", "read x; echo got:$x; echo to-stderr >&2; exit 3"],
        stdin=b"typed in\n",
    )
    assert asked.stdout == b"got:typed in\n"
    assert asked.stderr == b"to-stderr\n"
    assert asked.exit_code == 3

    terminal = run(platform, token, deployed.instance_id, ["sh", "-c", "tty"], tty=True)
    assert terminal.stdout.startswith(b"/dev/pts/"), terminal
    assert terminal.exit_code == 0

    # By service: one of its HEALTHY instances, here the only one.
    by_service = run(
        platform,
        token,
        deployed.service_id,
        ["sh", "-c", "echo $KOYEB_INSTANCE_ID"],
        id_type="SERVICE_ID",
    )
    assert by_service.stdout.decode().strip() == deployed.instance_id


def test_a_command_ends_when_its_user_leaves(platform: Shoal, deployed: Deployed):
    url = platform.url.replace("http://", "ws://") + "/v1/streams/instances/exec"
    command = ["sh", "-c", "echo started; exec sleep 1000"]
    with connect(url, subprotocols=["Bearer", platform.admin_token]) as ws:  # type: ignore[list-item]
        ws.send(json.dumps({"id": deployed.instance_id, "body": {"command": command}}))
        started = json.loads(ws.recv(timeout=30))["result"]["stdout"]["data"]
        assert base64.b64decode(started) == b"started\r\n"  # a tty: disableTty left out

    def sleep_gone() -> bool:
        names = ["sh", "-c", "cat /proc/[0-9]*/comm"]
        ran = run(platform, platform.admin_token, deployed.instance_id, names)
        return ran.exit_code == 0 and b"sleep" not in ran.stdout

    until("the command killed", sleep_gone)


def test_exec_refuses_what_is_not_the_callers(platform: Shoal, deployed: Deployed):
    with platform.client() as admin:
        org = admin.post("/v1/organizations", json={"name": "outsiders"}).json()["organization"]
        cred = admin.post(
            "/v1/credentials",
            json={"name": "outsider", "organization_id": org["id"], "type": "ORGANIZATION"},
        ).json()["credential"]
    for target, id_type in (
        (deployed.instance_id, "INSTANCE_ID"),
        (deployed.service_id, "SERVICE_ID"),
    ):
        refused = run(platform, cred["token"], target, ["true"], id_type=id_type)
        assert refused.error["code"] == 5, refused  # NOT_FOUND, as Koyeb's gRPC status
        assert refused.exit_code is None and not refused.stdout
    bad_token = run(platform, "not-a-token", deployed.instance_id, ["true"])
    assert bad_token.error["code"] == 16  # UNAUTHENTICATED


def shoal_cli(shoal: Shoal, *args: str, **kw: Any) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SHOAL_URL": shoal.url, "SHOAL_TOKEN": shoal.admin_token}
    return subprocess.Popen([sys.executable, "-m", "shoal", *args], env=env, **kw)


class Lines:
    """A process's output, line by line, read by a thread (so waiting for one can time out)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[bytes]) -> None:
        for raw in stream:
            self._lines.put(raw.decode())

    def until(self, wanted: str, within: float = 30) -> str:
        deadline, seen = time.monotonic() + within, ""
        while wanted not in seen:
            try:
                seen += self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {wanted!r} in:\n{seen}") from None
        return seen


def read_screen(terminal: int, until: bytes | None = None, within: float = 30) -> bytes:
    """What comes out of a terminal, until `until` does or the other end has closed."""
    screen, deadline = b"", time.monotonic() + within
    while until is None or until not in screen:
        if not select.select([terminal], [], [], max(0, deadline - time.monotonic()))[0]:
            raise AssertionError(f"the terminal stayed silent; it showed {screen!r}")
        try:
            screen += os.read(terminal, 4096)
        except OSError:  # EIO: every process holding its other end has exited
            break
    return screen


def test_cli_logs_and_exec(platform: Shoal, deployed: Deployed):
    service = "execs/web"
    shown = shoal_cli(platform, "services", "logs", service, stdout=subprocess.PIPE)
    out, _ = shown.communicate(timeout=30)
    assert shown.returncode == 0
    assert GREETING in out.decode() and "Instance is healthy" in out.decode()

    # -f: the backlog, then lines as they come. The app makes one when asked for a page
    # (busybox httpd -v logs every request, from where); an exec's own output is no log line.
    follow = shoal_cli(platform, "services", "logs", service, "-f", stdout=subprocess.PIPE)
    try:
        assert follow.stdout is not None
        lines = Lines(follow.stdout)
        lines.until(GREETING)
        page = ["wget", "-q", "-O", "-", "http://127.0.0.1:8000/"]
        assert run(platform, platform.admin_token, deployed.instance_id, page).exit_code == 0
        lines.until("127.0.0.1")  # the request's line (health checks come from the host)
    finally:
        follow.kill()
        follow.wait()

    execd = shoal_cli(
        platform,
        *("instances", "exec", deployed.instance_id[:8], "--"),
        *("sh", "-c", "cat /www/index.html; exit 7"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
    )
    out, _ = execd.communicate(timeout=30)
    assert (out, execd.returncode) == (b"index of execs", 7)

    # A terminal: this one in raw mode, its size passed on, keys sent as typed.
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
    typed = shoal_cli(
        platform,
        *("instances", "exec", deployed.instance_id, "--", "sh"),
        stdin=slave,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    screen = read_screen(master, until=b"# ")  # the shell's prompt: it reads keys now
    os.write(master, b"stty size; exit 5\r")
    screen += read_screen(master)
    os.close(master)
    assert typed.wait(timeout=30) == 5, screen
    assert b"33 101" in screen, screen

    piped = shoal_cli(
        platform,
        *("instances", "exec", "--service", service, "--", "sh", "-c", "read x; echo got:$x"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    out, _ = piped.communicate(b"from the pipe\n", timeout=30)
    assert (out, piped.returncode) == (b"got:from the pipe\n", 0)
