"""The process an image instance runs: Docker's merge rules with Koyeb's three override fields."""

from __future__ import annotations

import pytest

from shoal.core.definition import DockerSource
from shoal.core.process import (
    DEFAULT_PATH,
    ImageConfig,
    ProcessError,
    UserDatabase,
    image_process,
    resolve_user,
)

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
# a comment line, then a blank one

daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1000:1001:App:/home/app:/bin/sh
nohome:x:1002:1002:::/bin/sh
broken:x:notanumber:1
short:x:7
"""
GROUP = """\
root:x:0:
app:x:1001:
staff:x:50:app
weird:x:abc:
"""
USERS = UserDatabase(passwd=PASSWD, group=GROUP)


def run(
    image: ImageConfig,
    env: dict[str, str] | None = None,
    users: UserDatabase = USERS,
    **source: object,
):
    return image_process(image, DockerSource(**source), env or {}, users)


EP = ("/entry", "--flag")
CMD = ("serve", "--port", "80")


@pytest.mark.parametrize(
    ("entrypoint", "cmd", "overrides", "argv"),
    [
        # the image alone
        (EP, CMD, {}, ["/entry", "--flag", "serve", "--port", "80"]),
        (EP, (), {}, ["/entry", "--flag"]),
        ((), CMD, {}, ["serve", "--port", "80"]),
        # entrypoint replaces ENTRYPOINT and drops the image CMD
        (EP, CMD, {"entrypoint": ["/bin/sh", "-c"]}, ["/bin/sh", "-c"]),
        ((), CMD, {"entrypoint": ["/bin/other"]}, ["/bin/other"]),
        # ... unless command or args give a new CMD
        (
            EP,
            CMD,
            {"entrypoint": ["/bin/sh", "-c"], "command": "echo hi"},
            ["/bin/sh", "-c", "echo hi"],
        ),
        (
            EP,
            CMD,
            {"entrypoint": ["/bin/sh", "-c"], "args": ["echo hi"]},
            ["/bin/sh", "-c", "echo hi"],
        ),
        (
            EP,
            CMD,
            {"entrypoint": ["/e"], "command": "c", "args": ["a", "b"]},
            ["/e", "c", "a", "b"],
        ),
        # command replaces CMD, the image ENTRYPOINT stays; it is never split
        (EP, CMD, {"command": "worker"}, ["/entry", "--flag", "worker"]),
        ((), CMD, {"command": "/bin/echo hello"}, ["/bin/echo hello"]),
        ((), CMD, {"command": "/bin/echo", "args": ["a", "b c"]}, ["/bin/echo", "a", "b c"]),
        # args alone replace CMD, after the image ENTRYPOINT
        (EP, CMD, {"args": ["x", "y"]}, ["/entry", "--flag", "x", "y"]),
        ((), CMD, {"args": ["/bin/true"]}, ["/bin/true"]),
        # empty values are unset
        (
            EP,
            CMD,
            {"entrypoint": [], "command": "", "args": []},
            ["/entry", "--flag", "serve", "--port", "80"],
        ),
        ((), (), {"command": "run"}, ["run"]),
        ((), (), {"entrypoint": ["/e"]}, ["/e"]),
    ],
)
def test_argv(entrypoint, cmd, overrides, argv):
    assert run(ImageConfig(entrypoint=entrypoint, cmd=cmd), **overrides).argv == argv


@pytest.mark.parametrize("overrides", [{}, {"args": []}, {"command": ""}, {"entrypoint": []}])
def test_no_command_is_an_error(overrides):
    with pytest.raises(ProcessError) as err:
        run(ImageConfig(), **overrides)
    assert str(err.value) == "the image has no command: set command or entrypoint"


def test_env_merges_definition_over_image():
    image = ImageConfig(env=("A=1", "B=2", "PATH=/opt/bin:/bin", "EMPTY=", "A=3", "EQ=x=y", "NOEQ"))
    p = run(image, env={"B": "override", "C": "new"}, command="x")
    assert p.env == {
        "A": "3",
        "B": "override",
        "C": "new",
        "PATH": "/opt/bin:/bin",
        "EMPTY": "",
        "EQ": "x=y",
        "NOEQ": "",
        "HOME": "/root",
    }


def test_env_defaults():
    assert run(ImageConfig(cmd=("x",))).env == {"PATH": DEFAULT_PATH, "HOME": "/root"}


def test_definition_may_override_path_and_home():
    p = run(ImageConfig(cmd=("x",), env=("HOME=/img",)), env={"PATH": "/mine"})
    assert (p.env["PATH"], p.env["HOME"]) == ("/mine", "/img")
    assert run(ImageConfig(cmd=("x",)), env={"HOME": "/h"}).env["HOME"] == "/h"


def test_home_follows_the_user():
    assert run(ImageConfig(cmd=("x",), user="app")).env["HOME"] == "/home/app"
    assert run(ImageConfig(cmd=("x",), user="nohome")).env["HOME"] == "/"
    assert run(ImageConfig(cmd=("x",), user="4242")).env["HOME"] == "/"


@pytest.mark.parametrize(
    ("working_dir", "expected"),
    [("", "/"), ("/srv/app", "/srv/app"), ("srv", "/srv")],
)
def test_workdir(working_dir, expected):
    assert run(ImageConfig(cmd=("x",), working_dir=working_dir)).workdir == expected


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("", (0, 0, "/root")),
        ("root", (0, 0, "/root")),
        ("app", (1000, 1001, "/home/app")),
        ("1000", (1000, 1001, "/home/app")),  # a uid with an entry takes its primary group
        ("4242", (4242, 0, "/")),  # a uid without one gets gid 0
        ("app:staff", (1000, 50, "/home/app")),
        ("app:77", (1000, 77, "/home/app")),
        ("4242:4343", (4242, 4343, "/")),
        ("4242:staff", (4242, 50, "/")),
        ("daemon", (1, 1, "/usr/sbin")),
        (":staff", (0, 50, "/root")),
    ],
)
def test_resolve_user(user, expected):
    assert resolve_user(user, USERS) == expected


def test_process_user_is_numeric():
    assert run(ImageConfig(cmd=("x",), user="app:staff")).user == "1000:50"
    assert run(ImageConfig(cmd=("x",))).user == "0:0"


@pytest.mark.parametrize(
    ("user", "users", "message"),
    [
        ("ghost", USERS, "user 'ghost' not found in the image's /etc/passwd"),
        ("broken", USERS, "user 'broken' not found in the image's /etc/passwd"),
        ("short", USERS, "user 'short' not found in the image's /etc/passwd"),
        ("app", UserDatabase(), "user 'app' not found: the image has no /etc/passwd"),
        ("app:ghosts", USERS, "group 'ghosts' not found in the image's /etc/group"),
        ("app:weird", USERS, "group 'weird' not found in the image's /etc/group"),
        (
            "app:staff",
            UserDatabase(passwd=PASSWD),
            "group 'staff' not found: the image has no /etc/group",
        ),
    ],
)
def test_unknown_user_or_group(user, users, message):
    with pytest.raises(ProcessError) as err:
        resolve_user(user, users)
    assert str(err.value) == message


def test_numeric_user_needs_no_files():
    assert resolve_user("33:44", UserDatabase()) == (33, 44, "/")
    assert resolve_user("", UserDatabase()) == (0, 0, "/")


def test_image_config_from_oci():
    blob = {
        "architecture": "amd64",
        "config": {
            "User": "app",
            "ExposedPorts": {"8080/tcp": {}, "53/udp": {}},
            "Env": ["PATH=/bin", "A=1"],
            "Entrypoint": ["/entry"],
            "Cmd": ["serve"],
            "WorkingDir": "/srv",
            "Labels": {"x": "y"},
        },
    }
    assert ImageConfig.from_oci(blob) == ImageConfig(
        entrypoint=("/entry",),
        cmd=("serve",),
        env=("PATH=/bin", "A=1"),
        working_dir="/srv",
        user="app",
        exposed_ports=("53/udp", "8080/tcp"),
    )


@pytest.mark.parametrize(
    "blob", [{}, {"config": None}, {"config": {"Entrypoint": None, "Cmd": None, "Env": None}}]
)
def test_image_config_from_oci_empty(blob):
    assert ImageConfig.from_oci(blob) == ImageConfig()


@pytest.mark.parametrize(
    ("blob", "what"),
    [
        ({"config": "x"}, "'config' is not an object"),
        ({"config": {"Cmd": "echo hi"}}, "Cmd is not a list of strings"),
        ({"config": {"Env": ["A=1", 2]}}, "Env is not a list of strings"),
        ({"config": {"User": 5}}, "User is not a string"),
    ],
)
def test_image_config_from_oci_malformed(blob, what):
    with pytest.raises(ProcessError) as err:
        ImageConfig.from_oci(blob)
    assert str(err.value) == f"the image config is malformed: {what}"
