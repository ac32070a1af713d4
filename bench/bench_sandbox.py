"""Time from start to the first HTTP 200: busybox httpd in a sandbox vs. started as a plain process.

    .venv/bin/python bench/bench_sandbox.py [--runs N]

Both run the same static busybox httpd serving the same file; the runs alternate, so both
see the same machine. The plain process listens on 127.0.0.1, the sandbox on its private
address; each is polled with the same raw HTTP request every millisecond. The difference is
the platform's overhead per instance start (goal: under 50 ms). The sandbox's start is also
split into its steps, to show where the time goes. Needs root.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shoal.runtime import netns, scratch
from shoal.runtime.cgroups import Cgroup
from shoal.runtime.driver import Resources, SandboxSpec
from shoal.runtime.networks import Networks
from shoal.runtime.sandbox import SandboxDriver

PORT = 8080
POOL = "100.74.0.0/24"  # the bench's own addresses, inside namespaces it creates


def build_rootfs(root: Path) -> Path:
    rootfs = root / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy("/bin/busybox", rootfs / "bin" / "busybox")
    (rootfs / "bin" / "httpd").symlink_to("busybox")
    (rootfs / "www").mkdir()
    (rootfs / "www" / "index.html").write_text("hello\n")
    return rootfs


def first_200(address: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, port), timeout=1.0) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                if s.recv(64).split(b" ")[1:2] == [b"200"]:
                    return
        except OSError:
            pass
        time.sleep(0.001)
    raise TimeoutError(f"no 200 from {address}:{port}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def plain_run(rootfs: Path) -> float:
    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [
            str(rootfs / "bin" / "busybox"),
            "httpd",
            "-f",
            "-p",
            f"127.0.0.1:{port}",
            "-h",
            str(rootfs / "www"),
        ]
    )
    first_200("127.0.0.1", port)
    elapsed = time.perf_counter() - t0
    proc.kill()
    proc.wait()
    return elapsed


def sandbox_run(driver: SandboxDriver, rootfs: Path) -> float:
    spec = SandboxSpec(
        f"bench-{uuid.uuid4().hex[:10]}",
        rootfs,
        ["httpd", "-f", "-p", str(PORT), "-h", "/www"],
        {},
        Resources(vcpu=1, memory_mb=64, disk_mb=64),
        ports=(PORT,),
    )
    t0 = time.perf_counter()
    state = driver.start(spec)
    assert state.address is not None
    first_200(state.address, PORT)
    elapsed = time.perf_counter() - t0
    driver.destroy(spec.instance_id)
    return elapsed


class StepTimer:
    """Wraps the start's steps to record how long each took, by name."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = defaultdict(list)

    def wrap(self, owner: Any, attribute: str, label: str) -> None:
        original: Callable[..., Any] = getattr(owner, attribute)

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.times[label].append(time.perf_counter() - t0)

        setattr(owner, attribute, timed)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    runs = parser.parse_args().runs
    if os.geteuid() != 0:
        sys.exit("bench_sandbox needs root (namespaces, cgroups, loop mounts)")
    steps = StepTimer()
    steps.wrap(Networks, "acquire", "network: claim a spare (or make one)")
    steps.wrap(Cgroup, "create", "cgroup: mkdir + limits")
    steps.wrap(scratch, "create", "scratch disk: copy template + loop mount")
    steps.wrap(SandboxDriver, "_launch", "launch: fork, join cgroup + netns, exec bwrap")
    steps.wrap(SandboxDriver, "_wait_started", "bwrap sets the sandbox up")
    steps.wrap(SandboxDriver, "start", "start() in all")
    steps.wrap(netns, "create", "off the start path: make a spare network")
    steps.wrap(SandboxDriver, "destroy", "off the start path: destroy (incl. the above)")

    root = Path(tempfile.mkdtemp(prefix="shoal-bench-"))
    parent = f"shoal-bench-{uuid.uuid4().hex[:6]}"
    driver = SandboxDriver(root / "state", address_pool=POOL, cgroup_parent=parent)
    try:
        rootfs = build_rootfs(root)
        sandbox_run(driver, rootfs), plain_run(rootfs)  # warm caches, not measured
        steps.times.clear()
        plain: list[float] = []
        boxed: list[float] = []
        for _ in range(runs):
            plain.append(plain_run(rootfs))
            boxed.append(sandbox_run(driver, rootfs))
    finally:
        for leftover in driver.recover():
            driver.destroy(leftover.instance_id)
        # A driver that keeps no spare networks deletes the ready ones.
        SandboxDriver(root / "state", address_pool=POOL, cgroup_parent=parent, spare_networks=0)
        shutil.rmtree(root, ignore_errors=True)
        for controller in Path("/sys/fs/cgroup").iterdir():
            if (controller / parent).is_dir():
                (controller / parent).rmdir()

    print(f"start → first HTTP 200, busybox httpd, {runs} runs each (ms)")
    print(f"{'':28} {'p50':>8} {'p99':>8} {'mean':>8}")
    for label, values in (("plain process", plain), ("sandbox", boxed)):
        print(
            f"{label:28} {pct(values, 50):8.1f} {pct(values, 99):8.1f} "
            f"{statistics.mean(values) * 1000:8.1f}"
        )
    overhead50 = pct(boxed, 50) - pct(plain, 50)
    overhead99 = pct(boxed, 99) - pct(plain, 99)
    print(f"{'overhead (sandbox - plain)':28} {overhead50:8.1f} {overhead99:8.1f}")
    print(
        f"{'ratio (sandbox / plain)':28} {pct(boxed, 50) / pct(plain, 50):8.1f}x "
        f"{pct(boxed, 99) / pct(plain, 99):7.1f}x"
    )
    verdict = {True: "met", False: "MISSED"}
    print(
        f"goal: overhead under 50 ms per instance → p50 {verdict[overhead50 < 50]}, "
        f"p99 {verdict[overhead99 < 50]}"
    )
    print("\nwhere the sandbox's start goes (ms)")
    for label, values in steps.times.items():
        print(f"  {label:54} p50 {pct(values, 50):6.1f}  p99 {pct(values, 99):6.1f}")
    load = os.getloadavg()[0]
    print(f"\nload average during the run: {load:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
