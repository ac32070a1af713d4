"""A real OCI registry on loopback, and images built from files a test makes, pushed to it.

- `start_registry` runs Debian's `docker-registry` on a free 127.0.0.1 port with its storage
  under a directory of the test's, optionally behind htpasswd basic auth, and waits until
  `/v2/` answers. `Registry.stop` ends it.
- `busybox_rootfs` lays out a tiny userland (static busybox, its applets as symlinks, and an
  /etc/passwd and /etc/group) for images that must run something.
- `ImageBuilder` builds an image from a directory of files with `buildah from scratch` (in a
  private containers-storage, so the host's stays untouched), sets its config, and pushes it
  with skopeo; it returns the reference to pull. `push_index` pushes a multi-platform image
  (one variant per architecture under an OCI index) with `buildah manifest`.

Needs the Debian packages docker-registry, buildah, skopeo and busybox-static
(scripts/install-system-deps), and the `bcrypt` package for htpasswd; runs as root.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt
import httpx

BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "cat", "echo", "env", "id", "ls", "sleep", "true", "false", "httpd", "wget")
PASSWD = """\
root:x:0:0:root:/root:/bin/sh
app:x:1000:1000:app:/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
"""
GROUP = """\
root:x:0:
app:x:1000:
staff:x:50:app
nogroup:x:65534:
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Registry:
    host: str  # "127.0.0.1:PORT"
    root: Path  # config, htpasswd, storage and log
    process: subprocess.Popen[bytes]
    username: str | None = None  # set when the registry wants basic auth
    password: str | None = field(default=None, repr=False)

    def reference(self, name: str, tag: str = "latest") -> str:
        return f"{self.host}/{name}:{tag}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_registry(
    root: Path, *, username: str | None = None, password: str | None = None, timeout: float = 10.0
) -> Registry:
    """A registry storing under `root` (created), with basic auth when given a user."""
    root.mkdir(parents=True, exist_ok=True)
    host = f"127.0.0.1:{free_port()}"
    config: dict[str, object] = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(root / "data")},
            "delete": {"enabled": True},
        },
        "http": {"addr": host},
    }
    if username is not None:
        if not password:
            raise ValueError("a registry with a user needs a password")
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
        (root / "htpasswd").write_text(f"{username}:{hashed}\n")
        config["auth"] = {"htpasswd": {"realm": "shoal-tests", "path": str(root / "htpasswd")}}
    (root / "config.yml").write_text(json.dumps(config))  # JSON is YAML
    with (root / "registry.log").open("wb") as log:
        process = subprocess.Popen(
            ["docker-registry", "serve", str(root / "config.yml")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    registry = Registry(host, root, process, username, password)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {(root / 'registry.log').read_text()}")
        try:
            if httpx.get(f"http://{host}/v2/", timeout=1).status_code in (200, 401):
                return registry
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            registry.stop()
            raise RuntimeError(f"docker-registry did not answer on {host} in {timeout} s")
        time.sleep(0.05)


def busybox_rootfs(directory: Path, applets: tuple[str, ...] = APPLETS) -> Path:
    """Lay a busybox userland into `directory` (created): /bin/busybox, /bin/<applet>
    symlinks, /etc/passwd (root, app 1000:1000, nobody) and /etc/group; returns it."""
    (directory / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, directory / "bin" / "busybox")
    for applet in applets:
        (directory / "bin" / applet).symlink_to("busybox")
    (directory / "etc").mkdir(exist_ok=True)
    (directory / "etc" / "passwd").write_text(PASSWD)
    (directory / "etc" / "group").write_text(GROUP)
    for home in ("root", "home/app", "tmp"):
        (directory / home).mkdir(parents=True, exist_ok=True)
    (directory / "tmp").chmod(0o1777)
    return directory


@dataclass(frozen=True)
class BuildConfig:
    """What `buildah config` sets; None leaves a field unset."""

    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None
    user: str | None = None
    ports: tuple[str, ...] = ()  # "8080" or "8080/tcp"


class ImageBuilder:
    """Builds images with buildah in its own storage under `storage` and pushes them."""

    def __init__(self, storage: Path) -> None:
        self.storage = storage
        self._root, self._runroot = storage / "root", storage / "run"
        self._global = [
            "--root",
            str(self._root),
            "--runroot",
            str(self._runroot),
            "--storage-driver",
            "vfs",
        ]

    def push(
        self,
        files: Path,
        registry: Registry,
        name: str,
        tag: str = "latest",
        config: BuildConfig | None = None,
    ) -> str:
        """Build an image whose root is a copy of `files` (owners and modes kept, as root),
        push it to `registry` as NAME:TAG, and return the reference to pull."""
        local = self._build(files, f"localhost/{name}:{tag}", config or BuildConfig(), None)
        reference = registry.reference(name, tag)
        creds = _creds(registry)
        auth = ["--dest-creds", creds] if creds else ["--dest-no-creds"]
        try:
            _run(
                [
                    "skopeo",
                    "copy",
                    "--quiet",
                    "--dest-tls-verify=false",
                    *auth,
                    f"containers-storage:[vfs@{self._root}+{self._runroot}]{local}",
                    f"docker://{reference}",
                ]
            )
        finally:
            self._buildah("rmi", local)
        return reference

    def push_index(
        self,
        variants: dict[str, Path],
        registry: Registry,
        name: str,
        tag: str = "latest",
        config: BuildConfig | None = None,
    ) -> str:
        """Push a multi-platform image: one linux image per architecture ("amd64", "arm64"...)
        built from its directory of files, under one OCI index; returns the reference."""
        index = f"localhost/{name}-index:{tag}"
        built = [
            self._build(files, f"localhost/{name}-{arch}:{tag}", config or BuildConfig(), arch)
            for arch, files in variants.items()
        ]
        reference = registry.reference(name, tag)
        creds = _creds(registry)
        try:
            self._buildah("manifest", "create", index)
            for arch, local in zip(variants, built, strict=True):
                self._buildah(
                    "manifest", "add", "--arch", arch, index, f"containers-storage:{local}"
                )
            self._buildah(
                "manifest",
                "push",
                "--quiet",
                "--all",
                "--tls-verify=false",
                *(["--creds", creds] if creds else []),
                index,
                f"docker://{reference}",
            )
        finally:
            self._buildah("rmi", index, *built)
        return reference

    def _build(self, files: Path, local: str, config: BuildConfig, arch: str | None) -> str:
        container = self._buildah("from", "scratch").strip()
        try:
            mount = self._buildah("mount", container).strip()
            subprocess.run(["cp", "-a", f"{files}/.", mount], check=True, capture_output=True)
            flags = _config_flags(config) + (["--arch", arch] if arch else [])
            self._buildah("config", *flags, container)
            self._buildah("commit", "--quiet", "--format", "oci", container, local)
        finally:
            self._buildah("rm", container)
        return local

    def close(self) -> None:
        shutil.rmtree(self.storage, ignore_errors=True)

    def _buildah(self, *args: str) -> str:
        return _run(["buildah", *self._global, *args])


def _config_flags(config: BuildConfig) -> list[str]:
    flags = []
    if config.entrypoint is not None:
        flags += ["--entrypoint", json.dumps(config.entrypoint)]
    if config.cmd is not None:
        flags += ["--cmd", json.dumps(config.cmd)]
    for key, value in config.env.items():
        flags += ["--env", f"{key}={value}"]
    if config.workdir is not None:
        flags += ["--workingdir", config.workdir]
    if config.user is not None:
        flags += ["--user", config.user]
    for port in config.ports:
        flags += ["--port", port]
    return flags


def _creds(registry: Registry) -> str | None:
    """user:password for pushing; in argv, which is fine for a test's throwaway registry."""
    return f"{registry.username}:{registry.password}" if registry.username else None


def _run(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:2])} failed ({done.returncode}): {done.stderr}")
    return done.stdout
