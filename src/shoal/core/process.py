"""The process an instance of a container image runs (pure: file contents come in as strings).

`image_process` merges the image's config with the definition's `docker` overrides the way the
Docker daemon merges a `docker run` request with the image, using Koyeb's three fields:

- `entrypoint` (list), when non-empty, replaces the image ENTRYPOINT. The image CMD is then
  dropped (as with `docker run --entrypoint`), unless `command` or `args` give a new one.
- `command` (str), when non-empty, replaces the image CMD by `[command, *args]`. It is one argv
  element, never split: run a shell line with `command: "sh"`, `args: ["-c", "..."]`.
- `args` (list) without `command` replace the image CMD (as in `docker run IMAGE ARGS...`);
  the ENTRYPOINT, the image's or the definition's, stays in front of them.
- argv is ENTRYPOINT + CMD after these overrides; an empty argv is an error.
- An empty list or string counts as unset: Koyeb's wire format cannot tell them apart.
- env: the image ENV, then the definition's variables over it, key by key. PATH is the image's,
  or Docker's default when the image sets none; HOME is the user's home from the image's
  /etc/passwd ("/" when the user has no entry), unless ENV or the definition sets it.
- workdir: the image WORKDIR, "/" when unset (a relative one is taken from "/").
- user: the image USER ("", "name", "uid", "name:group", "uid:gid", any mix), resolved to a
  numeric "uid:gid" through the image's /etc/passwd and /etc/group. A user given by name must
  exist there; a numeric uid without an entry gets gid 0; no USER means root, "0:0".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shoal.core.definition import DockerSource

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ProcessError(Exception):
    """The image and the definition do not give a process that can run; says why, for users."""


@dataclass(frozen=True)
class ImageConfig:
    """The runtime part of an OCI image config (its `config` object)."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()  # "KEY=value", in the image's order
    working_dir: str = ""
    user: str = ""
    exposed_ports: tuple[str, ...] = ()  # "8080/tcp", as the image declares them

    @classmethod
    def from_oci(cls, blob: Mapping[str, Any]) -> ImageConfig:
        """Read an OCI (or Docker v2) image config blob, already parsed from JSON."""
        config = blob.get("config") or {}
        if not isinstance(config, Mapping):
            raise ProcessError("the image config is malformed: 'config' is not an object")
        return cls(
            entrypoint=_strings(config, "Entrypoint"),
            cmd=_strings(config, "Cmd"),
            env=_strings(config, "Env"),
            working_dir=_string(config, "WorkingDir"),
            user=_string(config, "User"),
            exposed_ports=tuple(sorted(config.get("ExposedPorts") or {})),
        )


@dataclass(frozen=True)
class UserDatabase:
    """The image's /etc/passwd and /etc/group contents; None where the image has no such file."""

    passwd: str | None = None
    group: str | None = None


@dataclass(frozen=True)
class Process:
    argv: list[str]
    env: dict[str, str]
    workdir: str
    user: str  # numeric "uid:gid"


def image_process(
    image: ImageConfig,
    source: DockerSource,
    env: Mapping[str, str],
    users: UserDatabase,
) -> Process:
    """The process to start for `image` under `source`'s overrides; `env` is the definition's."""
    argv = _argv(image, source)
    uid, gid, home = resolve_user(image.user, users)
    merged = {"PATH": DEFAULT_PATH, **_parse_env(image.env)}
    merged.update(env)
    merged.setdefault("HOME", home)
    workdir = image.working_dir or "/"
    if not workdir.startswith("/"):
        workdir = "/" + workdir
    return Process(argv=argv, env=merged, workdir=workdir, user=f"{uid}:{gid}")


def _argv(image: ImageConfig, source: DockerSource) -> list[str]:
    entrypoint = list(source.entrypoint or image.entrypoint)
    if source.command:
        cmd = [source.command, *(source.args or [])]
    elif source.args:
        cmd = list(source.args)
    elif source.entrypoint:
        cmd = []
    else:
        cmd = list(image.cmd)
    argv = entrypoint + cmd
    if not argv:
        raise ProcessError("the image has no command: set command or entrypoint")
    return argv


def resolve_user(user: str, users: UserDatabase) -> tuple[int, int, str]:
    """`user` as the image's USER gives it, to (uid, gid, home directory)."""
    name, _, group = user.partition(":")
    if not name:
        name = "0"
    entry = _find_passwd(name, users.passwd)
    if entry is not None:
        uid, gid, home = entry
    elif name.isdigit():
        uid, gid, home = int(name), 0, "/"
    elif users.passwd is None:
        raise ProcessError(f"user {name!r} not found: the image has no /etc/passwd")
    else:
        raise ProcessError(f"user {name!r} not found in the image's /etc/passwd")
    if group:
        gid = _resolve_group(group, users.group)
    return uid, gid, home or "/"


def _find_passwd(name: str, passwd: str | None) -> tuple[int, int, str] | None:
    """The (uid, gid, home) of the first entry whose name, or uid for a number, is `name`."""
    for fields in _entries(passwd, 7):
        if (
            (fields[0] == name or (name.isdigit() and fields[2] == name))
            and fields[2].isdigit()
            and fields[3].isdigit()
        ):
            return int(fields[2]), int(fields[3]), fields[5]
    return None


def _resolve_group(group: str, contents: str | None) -> int:
    if group.isdigit():
        return int(group)
    for fields in _entries(contents, 4):
        if fields[0] == group and fields[2].isdigit():
            return int(fields[2])
    if contents is None:
        raise ProcessError(f"group {group!r} not found: the image has no /etc/group")
    raise ProcessError(f"group {group!r} not found in the image's /etc/group")


def _entries(contents: str | None, width: int) -> list[list[str]]:
    """The colon-separated lines of a passwd-style file with at least `width` fields."""
    out = []
    for line in (contents or "").splitlines():
        if line.strip() and not line.startswith("#"):
            fields = line.split(":")
            if len(fields) >= width:
                out.append(fields)
    return out


def _parse_env(items: Sequence[str]) -> dict[str, str]:
    """Docker's "KEY=value" list; a later key wins, an entry without "=" is an empty value."""
    env: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        if key:
            env[key] = value
    return env


def _strings(config: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = config.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProcessError(f"the image config is malformed: {key} is not a list of strings")
    return tuple(value)


def _string(config: Mapping[str, Any], key: str) -> str:
    value = config.get(key) or ""
    if not isinstance(value, str):
        raise ProcessError(f"the image config is malformed: {key} is not a string")
    return value
