"""The bwrap command line and status file: pure functions of their inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoal.runtime.bwrap import (
    Identity,
    Status,
    bwrap_options,
    command_line,
    encode_options,
    identity,
    parse_status,
)
from shoal.runtime.driver import Resources, SandboxSpec


def spec(**fields: object) -> SandboxSpec:
    base: dict[str, object] = {
        "instance_id": "inst-1",
        "rootfs": Path("/images/app/rootfs"),
        "argv": ["python", "-m", "app", "--port", "8000"],
        "env": {"SECRET": "s3cr3t"},
        "resources": Resources(vcpu=0.5, memory_mb=256, disk_mb=1024),
    }
    return SandboxSpec(**{**base, **fields})


def options(s: SandboxSpec, scratch: str = "/s", status_fd: int = 3) -> list[str]:
    return bwrap_options(s, Path(scratch), status_fd)


def test_command_line_names_only_the_options_fd_and_the_command():
    assert command_line(spec(), options_fd=4) == [
        "bwrap",
        "--args",
        "4",
        "--",
        "python",
        "-m",
        "app",
        "--port",
        "8000",
    ]
    assert encode_options(["--proc", "/proc"]) == b"--proc\0/proc\0"


def test_options_isolate_everything_but_the_network():
    opts = options(spec(), status_fd=5)
    for flag in (
        "--unshare-user",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup",
        "--new-session",
    ):
        assert flag in opts
    # The driver starts bwrap inside the instance's network namespace; bwrap must not make
    # another, nor tie the sandbox's life to the agent's.
    assert "--unshare-net" not in opts and "--unshare-all" not in opts
    assert "--die-with-parent" not in opts
    assert opts[opts.index("--cap-drop") + 1] == "ALL"
    assert opts[opts.index("--json-status-fd") + 1] == "5"


def test_options_mount_only_the_image_read_only_and_the_scratch_area_writable():
    opts = options(spec(), "/state/i/scratch")
    pairs = {
        (opts[i], opts[i + 1], opts[i + 2])
        for i in range(len(opts) - 2)
        if opts[i] in ("--ro-bind", "--bind")
    }
    assert pairs == {
        ("--ro-bind", "/images/app/rootfs", "/"),
        ("--bind", "/state/i/scratch", "/tmp"),
    }
    assert opts[opts.index("--proc") + 1] == "/proc"
    assert opts[opts.index("--dev") + 1] == "/dev"


def test_the_environment_is_not_an_option():
    assert not any("s3cr3t" in arg for arg in options(spec()))


def test_options_user_hostname_and_workdir():
    opts = options(spec(user="1000:1001", hostname="web", workdir="/app"))
    assert opts[opts.index("--uid") + 1] == "1000"
    assert opts[opts.index("--gid") + 1] == "1001"
    assert opts[opts.index("--hostname") + 1] == "web"
    assert opts[opts.index("--chdir") + 1] == "/app"


def test_options_hostname_defaults_to_the_instance_id_cut_to_what_the_kernel_takes():
    opts = options(spec(instance_id="x" * 100))
    assert opts[opts.index("--hostname") + 1] == "x" * 63
    opts = options(spec())
    assert opts[opts.index("--uid") + 1] == "0" and opts[opts.index("--hostname") + 1] == "inst-1"


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        (None, Identity(0, 0)),
        ("", Identity(0, 0)),
        ("1000", Identity(1000, 0)),
        ("1000:1000", Identity(1000, 1000)),
        ("0:5", Identity(0, 5)),
        ("1000:", Identity(1000, 0)),
    ],
)
def test_identity(user, expected):
    assert identity(user) == expected


@pytest.mark.parametrize("user", ["app", "1000:app", "-1"])
def test_identity_refuses_names(user):
    with pytest.raises(ValueError, match="numeric"):
        identity(user)


def test_status_while_running_after_exit_and_mid_write():
    started = '{ "child-pid": 4242, "pid-namespace": 4026532180 }\n'
    assert parse_status("") == Status()
    assert parse_status(started) == Status(child_pid=4242)
    assert parse_status(started + '{ "exit-co') == Status(child_pid=4242)
    assert parse_status(started + '{ "exit-code": 3 }\n') == Status(4242, 3)


@pytest.mark.parametrize(
    ("code", "expected"), [(0, 0), (1, 1), (128, 128), (137, -9), (143, -15), (255, 255)]
)
def test_status_reports_signals_as_negative_codes(code, expected):
    assert parse_status(f'{{"child-pid": 1}}\n{{"exit-code": {code}}}\n').exit_code == expected
