"""The node's stack: sandboxes on the host's userland, read-only, with their own /workspace."""

from __future__ import annotations

import os
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
from tests.runtime.sandboxes import Sandboxes, wait_for

from shoal.runtime.driver import Bind, Phase, SandboxError
from shoal.runtime.stack import stack_binds, stack_root

PROBE = textwrap.dedent("""
    import errno, os, pwd, socket, sys
    for path in sys.argv[1:]:
        print(path, os.path.exists(path))
    for path in ("/usr/probe", "/workspace/probe"):
        try:
            open(path, "w")
        except OSError as e:
            print(path, errno.errorcode[e.errno])
    with open("/cache/built", "w") as f:
        f.write("from the sandbox")
    print(open("/workspace/app.txt").read().strip())
    print(pwd.getpwuid(os.getuid()).pw_name, socket.gethostbyname("localhost"))
    print(open("/etc/resolv.conf").read() == open("/workspace/host-resolv.conf").read())
""")


def test_the_stack_root_is_made_once_and_mirrors_the_hosts_layout(tmp_path: Path):
    root = stack_root(tmp_path)
    assert stack_root(tmp_path) == root
    assert [p.name for p in tmp_path.iterdir()] == [root.name]  # no temporary directory left
    for name in ("bin", "lib", "lib64", "sbin"):
        host = Path("/", name)
        if host.is_symlink():
            assert os.readlink(root / name) == os.readlink(host)
    for bind in stack_binds():
        assert not bind.writable and str(bind.source) == bind.target
        assert (root / bind.target[1:]).is_dir() == bind.source.is_dir()
    assert {b.target for b in stack_binds()} >= {"/usr", "/etc/ld.so.cache"}
    assert not (root / "etc" / "resolv.conf").is_symlink()
    assert (root / "etc" / "passwd").read_text().startswith("root:x:0:0:")


def test_an_app_on_the_stack_sees_the_hosts_userland_and_its_workspace_only(
    sandbox: Sandboxes, tmp_path: Path
):
    workspace, cache = tmp_path / "workspace", tmp_path / "cache"
    workspace.mkdir()
    cache.mkdir()
    (workspace / "app.txt").write_text("hello from the workspace\n")
    (workspace / "host-resolv.conf").write_text(Path("/etc/resolv.conf").read_text())
    # /var/tmp and /run are empty mountpoints (for Dockerfile builds): nothing of the host's.
    hidden = ["/root", "/home", "/var/lib", "/var/log", "/run/netns", "/etc/shadow"]
    hidden += ["/etc/ssl/private"]
    hidden += [str(tmp_path), str(Path(__file__).parent)]
    binds = (*stack_binds(), Bind(workspace, "/workspace"), Bind(cache, "/cache", writable=True))

    def on_the_stack(argv: list[str]) -> str:
        spec = replace(sandbox.spec(argv), rootfs=stack_root(tmp_path / "state"), binds=binds)
        sandbox.driver.start(spec)
        wait_for(lambda: sandbox.driver.inspect(spec.instance_id).phase is Phase.EXITED, "the exit")
        logs = sandbox.driver.logs(spec.instance_id)
        assert sandbox.driver.inspect(spec.instance_id).exit_code == 0, logs.stderr.read_text()
        return logs.stdout.read_text()

    out = on_the_stack(["/usr/bin/python3", "-c", PROBE, *hidden])
    assert out.splitlines() == [
        *(f"{path} False" for path in hidden),
        "/usr/probe EROFS",
        "/workspace/probe EROFS",
        "hello from the workspace",
        "root 127.0.0.1",
        "True",
    ]
    assert (cache / "built").read_text() == "from the sandbox"
    assert on_the_stack(["/bin/sh", "-c", "echo hi"]) == "hi\n"


def test_a_bind_target_must_be_absolute(sandbox: Sandboxes, tmp_path: Path):
    spec = replace(sandbox.spec(["true"]), binds=(Bind(tmp_path, "workspace"),))
    with pytest.raises(SandboxError, match="absolute"):
        sandbox.driver.start(spec)
