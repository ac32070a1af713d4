"""Real sandboxes: start, exec, stop, destroy, and adoption by a driver that did not start them."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from tests.runtime.sandboxes import INDEX, POOL, PORT, Sandboxes, wait_for, wait_http

from shoal.runtime.addresses import SPARE, AddressPool
from shoal.runtime.driver import ExecRequest, Phase, Resources, SandboxError, SandboxUnavailable
from shoal.runtime.netns import network_for
from shoal.runtime.sandbox import SandboxDriver

AGENT = textwrap.dedent("""
    import dataclasses, json, sys, time
    from pathlib import Path
    from shoal.runtime.driver import Resources, SandboxSpec
    from shoal.runtime.sandbox import SandboxDriver
    state, parent, rootfs, instance_id, pool = sys.argv[1:6]
    driver = SandboxDriver(Path(state), address_pool=pool, cgroup_parent=parent)
    script = ("httpd -p 8080 -h /www; "
              "while [ ! -e /tmp/quit ]; do sleep 0.05; done; exit 7")
    spec = SandboxSpec(instance_id, Path(rootfs), ["sh", "-c", script], {},
                       Resources(0.5, 64, 16), ports=(8080,))
    state = driver.start(spec)
    print(json.dumps({"pid": state.pid, "address": state.address}), flush=True)
    time.sleep(600)
""")


def test_a_new_driver_adopts_a_sandbox_whose_agent_was_killed(sandbox: Sandboxes):
    spec = sandbox.spec(["unused"])
    agent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            AGENT,
            str(sandbox.state_dir),
            sandbox.cgroup_parent,
            str(sandbox.rootfs),
            spec.instance_id,
            POOL,
        ],
        stdout=subprocess.PIPE,
    )
    assert agent.stdout is not None
    started = json.loads(agent.stdout.readline())
    agent.send_signal(signal.SIGKILL)
    agent.wait()
    wait_http(started["address"])

    driver = sandbox.new_driver()
    adopted = {s.instance_id: s for s in driver.recover()}[spec.instance_id]
    assert adopted.phase is Phase.RUNNING
    assert (adopted.pid, adopted.address) == (started["pid"], started["address"])
    assert wait_http(started["address"]).status_code == 200

    # It ends while no agent that started it is alive: its exit code is still known.
    sandbox.run(spec.instance_id, "touch /tmp/quit")
    wait_for(lambda: driver.inspect(spec.instance_id).phase is Phase.EXITED, "the exit")
    assert driver.inspect(spec.instance_id).exit_code == 7


def test_exit_code_and_recover_after_exit(sandbox: Sandboxes):
    box = sandbox.driver.start(sandbox.spec(["sh", "-c", "echo out; echo err >&2; exit 3"]))
    wait_for(lambda: sandbox.driver.inspect(box.instance_id).phase is Phase.EXITED, "the exit")
    state = sandbox.driver.inspect(box.instance_id)
    assert (state.exit_code, state.oom_killed) == (3, False)
    logs = sandbox.driver.logs(box.instance_id)
    assert (logs.stdout.read_text(), logs.stderr.read_text()) == ("out\n", "err\n")
    recovered = {s.instance_id: s for s in sandbox.new_driver().recover()}
    assert recovered[box.instance_id].exit_code == 3


def test_stop_terminates_then_kills_after_the_grace_period(sandbox: Sandboxes):
    polite = sandbox.driver.start(sandbox.httpd())
    stubborn = sandbox.driver.start(
        sandbox.spec(["sh", "-c", "trap '' TERM; while :; do sleep 0.1; done"])
    )
    wait_http(polite.address)
    assert sandbox.driver.stop(polite.instance_id, grace_seconds=5).exit_code == -15
    state = sandbox.driver.stop(stubborn.instance_id, grace_seconds=0.3)
    assert (state.phase, state.exit_code) == (Phase.EXITED, -9)
    assert sandbox.driver.stop(stubborn.instance_id, grace_seconds=0.3) == state  # idempotent


def test_a_stopped_sandbox_resumes_in_what_it_kept(sandbox: Sandboxes):
    """Deep sleep: the processes stop, the address, scratch and cgroup stay; a resume runs
    the command again there, under the limits it is given, which can change in place."""
    spec = sandbox.httpd(vcpu=1.0)
    box = sandbox.driver.start(spec)
    wait_http(box.address)
    sandbox.run(box.instance_id, "echo kept > /tmp/note")
    with pytest.raises(SandboxError, match="is running"):
        sandbox.driver.resume(spec)
    assert sandbox.driver.stop(box.instance_id, grace_seconds=5).phase is Phase.EXITED
    record = sandbox.state_dir / "instances" / box.instance_id / "instance.json"
    quota = Path(json.loads(record.read_text())["cgroup_dirs"]["cpu"], "cpu.cfs_quota_us")
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://{box.address}:{PORT}/", timeout=1.0)

    again = sandbox.driver.resume(spec)
    assert again.phase is Phase.RUNNING and again.address == box.address
    assert again.pid != box.pid and again.exit_code is None
    assert wait_http(box.address).text == INDEX
    assert sandbox.run(box.instance_id, "cat /tmp/note") == (0, "kept\n")
    assert quota.read_text().strip() == "100000"
    sandbox.driver.limit(box.instance_id, Resources(0.25, 64, 16, 64))
    assert quota.read_text().strip() == "25000"
    assert sandbox.driver.stop(box.instance_id, grace_seconds=5).exit_code == -15


def test_destroy_leaves_nothing_behind(sandbox: Sandboxes):
    box = sandbox.driver.start(sandbox.httpd())
    wait_http(box.address)
    record = json.loads(
        (sandbox.state_dir / "instances" / box.instance_id / "instance.json").read_text()
    )
    sandbox.driver.destroy(box.instance_id)

    assert sandbox.driver.inspect(box.instance_id).phase is Phase.MISSING
    assert not (sandbox.state_dir / "instances" / box.instance_id).exists()
    mountinfo = Path("/proc/self/mountinfo").read_text()
    assert box.instance_id not in mountinfo
    for directory in record["cgroup_dirs"].values():
        assert not Path(directory).exists()
    assert not Path("/run/netns", record["netns"]).exists()
    assert not Path("/sys/class/net", record["veth"]).exists()
    assert not (sandbox.state_dir / "leases" / str(record["slot"])).exists()
    assert not os.path.exists(f"/proc/{box.pid}")  # reaped, not even a zombie
    sandbox.driver.destroy(box.instance_id)  # idempotent


def test_starts_and_destroys_at_once_each_keep_their_own_network(sandbox: Sandboxes):
    """An agent starts and destroys sandboxes in threads at once, and each destroy makes new
    spare networks: no start may claim a spare still being made, nor lose its network to a
    trim of the spares."""

    def life(_: int) -> str | None:
        box = sandbox.driver.start(sandbox.httpd())
        try:
            wait_http(box.address)
        finally:
            sandbox.driver.destroy(box.instance_id)
        return box.address

    with ThreadPoolExecutor(6) as ex:
        addresses = list(ex.map(life, range(30)))
    assert all(addresses)
    leases = sandbox.state_dir / "leases"
    holders = {p.read_text() for p in leases.iterdir() if p.name.isdigit()}
    assert holders <= {SPARE}  # only spares are left, every one of them made
    for p in leases.iterdir():
        if p.name.isdigit():
            slot = int(p.name)
            lease = AddressPool(POOL, leases).lease(slot)
            assert network_for(lease).path.exists()


def test_exec_runs_inside_with_the_instances_view_and_cgroup(sandbox: Sandboxes):
    box = sandbox.driver.start(sandbox.spec(["sleep", "60"], hostname="exec-box"))
    proc = sandbox.driver.exec(
        ExecRequest(
            box.instance_id,
            ["sh", "-c", "hostname; echo $GREETING; cat /proc/self/cgroup; exit 4"],
            env={"GREETING": "hi"},
        )
    )
    out, err = proc.communicate(timeout=10)
    lines = out.decode().splitlines()
    assert proc.returncode == 4, err
    assert lines[:2] == ["exec-box", "hi"]
    assert any(line.endswith(":/") and "memory" in line for line in lines)  # its own cgroup ns

    with pytest.raises(SandboxError):
        sandbox.driver.exec(ExecRequest("no-such-instance", ["true"]))


def test_exec_with_a_tty(sandbox: Sandboxes):
    box = sandbox.driver.start(sandbox.spec(["sleep", "60"]))
    proc = sandbox.driver.exec(
        ExecRequest(
            box.instance_id, ["sh", "-c", "test -t 0 && test -t 1 && echo on-a-tty"], tty=True
        )
    )
    assert proc.stdout is not None and proc.stdin is not None
    output = b""
    while b"on-a-tty" not in output:
        ready, _, _ = select.select([proc.stdout], [], [], 10)
        assert ready, f"no output from the tty: {output!r}"
        output += os.read(proc.stdout.fileno(), 1024)
    assert proc.wait(timeout=10) == 0
    proc.stdin.close()
    proc.stdout.close()


def test_instance_runs_as_the_images_user(sandbox: Sandboxes):
    box = sandbox.driver.start(sandbox.spec(["sleep", "60"], user="1000:1000"))
    code, out = sandbox.run(box.instance_id, "id -u; id -g; touch /tmp/mine && echo wrote")
    assert (code, out.split()) == (0, ["1000", "1000", "wrote"])


def test_a_command_that_cannot_run_exits_with_the_reason_in_its_log(sandbox: Sandboxes):
    spec = sandbox.spec(["/no/such/binary"])
    state = sandbox.driver.start(spec)  # bwrap starts; the exec inside fails
    wait_for(lambda: sandbox.driver.inspect(spec.instance_id).phase is Phase.EXITED, "the exit")
    assert sandbox.driver.inspect(spec.instance_id).exit_code != 0
    assert "no/such/binary" in sandbox.driver.logs(state.instance_id).stderr.read_text()
    with pytest.raises(SandboxError, match="already exists"):
        sandbox.driver.start(spec)


def test_not_root_is_refused_with_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(SandboxUnavailable, match="must run as root") as refused:
        SandboxDriver(tmp_path)
    assert "network namespace" in str(refused.value) and "cgroups" in str(refused.value)


def test_a_start_that_fails_half_way_leaves_nothing(sandbox: Sandboxes):
    leases = sandbox.state_dir / "leases"
    spec = sandbox.spec(["true"], disk_mb=0)  # mkfs refuses an empty disk, after the network
    with pytest.raises(SandboxError, match="mkfs"):
        sandbox.driver.start(spec)
    assert not (sandbox.state_dir / "instances" / spec.instance_id).exists()
    assert spec.instance_id not in [p.read_text() for p in leases.iterdir()]
    assert not any(
        Path(base, sandbox.cgroup_parent, spec.instance_id).exists()
        for base in Path("/sys/fs/cgroup").iterdir()
    )
    with pytest.raises(SandboxError, match="numeric"):
        sandbox.driver.start(sandbox.spec(["true"], user="app"))
