"""What the runtime tests share: the test image's contents, a driver that cleans up after a
test, and waiting helpers."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx

from shoal.runtime.driver import Resources, SandboxSpec
from shoal.runtime.sandbox import SandboxDriver

APPLETS = (
    "sh",
    "httpd",
    "ls",
    "cat",
    "ps",
    "sleep",
    "id",
    "hostname",
    "touch",
    "dd",
    "nc",
    "find",
    "kill",
    "test",
    "echo",
    "df",
    "head",
    "true",
    "wc",
)
POOL = "100.73.0.0/24"  # the tests' own addresses, inside namespaces they create
PORT = 8080
INDEX = "hello from the image\n"


class Sandboxes:
    """A driver plus the ids it started, destroyed at the end of the test."""

    def __init__(self, state_dir: Path, cgroup_parent: str, rootfs: Path) -> None:
        self.state_dir, self.cgroup_parent, self.rootfs = state_dir, cgroup_parent, rootfs
        self.driver = self.new_driver()
        self.started: list[str] = []

    def new_driver(self) -> SandboxDriver:
        """Another driver on the same state, as a restarted agent would make."""
        return SandboxDriver(self.state_dir, address_pool=POOL, cgroup_parent=self.cgroup_parent)

    def spec(
        self,
        argv: list[str],
        *,
        vcpu: float = 0.5,
        memory_mb: int = 64,
        disk_mb: int = 16,
        pids: int = 64,
        hostname: str = "",
        user: str | None = None,
    ) -> SandboxSpec:
        instance_id = f"t-{uuid.uuid4().hex[:12]}"
        self.started.append(instance_id)
        return SandboxSpec(
            instance_id=instance_id,
            rootfs=self.rootfs,
            argv=argv,
            env={},
            resources=Resources(vcpu, memory_mb, disk_mb, pids),
            hostname=hostname,
            user=user,
            ports=(PORT,),
        )

    def httpd(self, **kwargs: object) -> SandboxSpec:
        """Serves the image's page at / and the instance's hostname at /id.html."""
        argv = [
            "sh",
            "-c",
            "hostname > /tmp/id.html && cp /www/index.html /tmp/ && "
            f"exec httpd -f -p {PORT} -h /tmp",
        ]
        return self.spec(argv, **kwargs)

    def run(self, instance_id: str, script: str, timeout: float = 10.0) -> tuple[int, str]:
        """`sh -c script` inside a running sandbox: exit code and stdout+stderr."""
        from shoal.runtime.driver import ExecRequest

        proc = self.driver.exec(ExecRequest(instance_id, ["sh", "-c", "exec 2>&1; " + script]))
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out.decode()


def wait_http(address: str, path: str = "/", timeout: float = 5.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(f"http://{address}:{PORT}{path}", timeout=1.0)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
