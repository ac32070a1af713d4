"""Real sandboxes: what an instance can see and reach, and its resource limits."""

from __future__ import annotations

import socket
import subprocess
import time

import httpx
from tests.runtime.sandboxes import INDEX, PORT, Sandboxes, free_port, wait_for, wait_http

from shoal.runtime.driver import Phase


def test_instances_answer_on_their_own_address_even_on_the_same_port(sandbox: Sandboxes):
    a = sandbox.driver.start(sandbox.httpd(hostname="alpha"))
    b = sandbox.driver.start(sandbox.httpd(hostname="beta"))
    assert a.phase is Phase.RUNNING and a.address and b.address and a.address != b.address
    assert wait_http(a.address).text == INDEX
    assert wait_http(a.address, "/id.html").text == "alpha\n"
    assert wait_http(b.address, "/id.html").text == "beta\n"


def test_only_exposed_ports_take_connections(sandbox: Sandboxes):
    """httpd on the exposed port and on 9000, which is not: the host reaches the first only,
    and is refused at once on the other; inside, both answer."""
    argv = [
        "sh",
        "-c",
        f"cp /www/index.html /tmp/ && httpd -p 9000 -h /tmp && exec httpd -f -p {PORT} -h /tmp",
    ]
    box = sandbox.driver.start(sandbox.spec(argv))
    assert box.address
    assert wait_http(box.address).text == INDEX
    with socket.socket() as s:
        s.settimeout(5)
        try:
            s.connect((box.address, 9000))
            raise AssertionError("port 9000 is not exposed, yet it took a connection")
        except ConnectionRefusedError:
            pass  # a reset, at once: no timeout
    code, out = sandbox.run(box.instance_id, "nc 127.0.0.1 9000 </dev/null && echo reached")
    assert code == 0 and "reached" in out, out


def test_an_instance_sees_only_its_image_its_processes_and_its_own_network(sandbox: Sandboxes):
    marker = sandbox.state_dir / "host-only-marker"
    marker.write_text("host secret")
    box = sandbox.driver.start(sandbox.httpd(hostname="box"))
    wait_http(box.address)

    code, out = sandbox.run(box.instance_id, "ls /")
    assert code == 0 and sorted(out.split()) == ["bin", "dev", "etc", "proc", "tmp", "www"]
    code, out = sandbox.run(box.instance_id, "cat /etc/hostname; ls /work; hostname")
    assert "No such file" in out and out.strip().endswith("box")
    code, out = sandbox.run(box.instance_id, f"find / -name {marker.name} -o -name shoal* ")
    assert out.strip() == ""
    # Its own PID namespace: bwrap's init, the server and this command's own processes.
    code, out = sandbox.run(box.instance_id, "ps -o pid,args")
    commands = [line.split(None, 1)[1] for line in out.splitlines()[1:]]
    assert len(commands) <= 5 and any(c.startswith("httpd") for c in commands)
    assert not any("pytest" in c or "python" in c for c in commands)

    # The host's loopback is not the instance's: a server on the host's 127.0.0.1 is out of reach.
    with socket.socket() as server:
        port = free_port()
        server.bind(("127.0.0.1", port))
        server.listen()
        code, out = sandbox.run(box.instance_id, f"nc -w 1 127.0.0.1 {port} </dev/null")
        assert code != 0


def test_another_instances_files_and_processes_are_invisible(sandbox: Sandboxes):
    a = sandbox.driver.start(sandbox.spec(["sh", "-c", "echo a-secret > /tmp/a-file; sleep 60"]))
    b = sandbox.driver.start(sandbox.spec(["sleep", "60"]))
    wait_for(lambda: sandbox.run(a.instance_id, "cat /tmp/a-file")[1] == "a-secret\n", "a's file")
    _, out = sandbox.run(b.instance_id, "ls /tmp; find / -name 'a-*'")
    assert out.strip() == ""
    _, out = sandbox.run(b.instance_id, "ps -o args")
    assert "a-secret" not in out and "sleep 60" in out


def test_root_is_read_only_and_scratch_is_writable_up_to_disk_mb(sandbox: Sandboxes):
    box = sandbox.driver.start(sandbox.spec(["sleep", "60"], disk_mb=16))
    code, out = sandbox.run(box.instance_id, "touch /bin/new")
    assert code != 0 and "Read-only file system" in out
    code, out = sandbox.run(box.instance_id, "echo ok > /tmp/small && cat /tmp/small")
    assert (code, out) == (0, "ok\n")
    code, out = sandbox.run(box.instance_id, "dd if=/dev/zero of=/tmp/fill bs=1M count=32")
    assert code != 0 and "No space left on device" in out
    code, out = sandbox.run(box.instance_id, "df -k /tmp")
    assert int(out.splitlines()[1].split()[1]) <= 16 * 1024


def test_a_memory_hog_is_oom_killed_and_the_rest_goes_on(sandbox: Sandboxes):
    neighbour = sandbox.driver.start(sandbox.httpd())
    # dd fills a 256 MiB buffer: far past the 32 MiB limit.
    hog = sandbox.driver.start(
        sandbox.spec(["dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1"], memory_mb=32)
    )
    wait_for(lambda: sandbox.driver.inspect(hog.instance_id).phase is Phase.EXITED, "the OOM kill")
    state = sandbox.driver.inspect(hog.instance_id)
    assert state.oom_killed and state.exit_code == -9
    assert wait_http(neighbour.address).status_code == 200
    assert subprocess.run(["true"]).returncode == 0  # the host goes on too


def test_a_cpu_spinner_is_held_to_its_vcpu_quota(sandbox: Sandboxes):
    box = sandbox.driver.start(sandbox.spec(["sh", "-c", "while :; do :; done"], vcpu=0.25))
    time.sleep(0.3)  # past start-up
    before, t0 = sandbox.driver.usage(box.instance_id).cpu_seconds, time.monotonic()
    time.sleep(2.0)
    used = sandbox.driver.usage(box.instance_id).cpu_seconds - before
    share = used / (time.monotonic() - t0)
    # The quota is the ceiling; on a busy host the spinner may get less than its share.
    assert 0.05 < share <= 0.25 * 1.12, f"the spinner used {share:.0%} of a core"


def test_a_fork_bomb_stops_at_the_pids_limit(sandbox: Sandboxes):
    neighbour = sandbox.driver.start(sandbox.httpd())
    # A subshell forks until the limit makes it fail; the instance's own shell goes on.
    bomb = sandbox.driver.start(
        sandbox.spec(
            [
                "sh",
                "-c",
                (
                    "(i=0; while [ $i -lt 500 ]; do sleep 30 & i=$((i+1)); done); "
                    "echo survived; exec sleep 30"
                ),
            ],
            pids=24,
        )
    )
    logs = sandbox.driver.logs(bomb.instance_id)
    wait_for(lambda: "survived" in logs.stdout.read_text(), "the bomb to stop")
    assert "can't fork" in logs.stderr.read_text()
    assert sandbox.driver.usage(bomb.instance_id).pids <= 24
    assert sandbox.driver.inspect(bomb.instance_id).phase is Phase.RUNNING
    assert wait_http(neighbour.address).status_code == 200
    assert subprocess.run(["true"]).returncode == 0


def test_frozen_instance_does_not_answer_until_thawed(sandbox: Sandboxes):
    box = sandbox.driver.start(sandbox.httpd())
    wait_http(box.address)
    sandbox.driver.freeze(box.instance_id)
    assert sandbox.driver.inspect(box.instance_id).frozen
    cpu = sandbox.driver.usage(box.instance_id).cpu_seconds
    try:
        httpx.get(f"http://{box.address}:{PORT}/", timeout=0.5)
        raise AssertionError("a frozen instance answered")
    except httpx.TimeoutException:
        pass
    assert sandbox.driver.usage(box.instance_id).cpu_seconds == cpu
    sandbox.driver.thaw(box.instance_id)
    assert not sandbox.driver.inspect(box.instance_id).frozen
    assert wait_http(box.address).status_code == 200
