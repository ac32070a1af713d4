"""ImageStore against a real registry on loopback, with images built here from files."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.support.registry import BuildConfig, ImageBuilder, Registry, busybox_rootfs, free_port

from shoal.build.image import ImageStore, StoreStats, process_for
from shoal.build.image_errors import (
    AuthenticationRequired,
    ImageNotFound,
    RegistryUnreachable,
    UnsupportedImage,
)
from shoal.build.reference import parse_reference
from shoal.build.registry_auth import RegistryCredentials
from shoal.core.definition import DockerSource
from shoal.core.process import ImageConfig

SCRIPT = 'echo "$GREETING from $(id -u):$(id -g) in $(pwd)"'
APP_CONFIG = BuildConfig(
    entrypoint=["/bin/sh", "-c"],
    cmd=[SCRIPT],
    env={"GREETING": "hello", "PATH": "/bin"},
    workdir="/srv",
    user="app",
    ports=("8080/tcp",),
)


@dataclass(frozen=True)
class Pushed:
    app: str  # reference of an image with a busybox userland and a few files of note
    other: str  # reference of another image


@pytest.fixture(scope="module")
def pushed(tmp_path_factory, image_builder: ImageBuilder, registry: Registry) -> Pushed:
    files = busybox_rootfs(tmp_path_factory.mktemp("app"))
    (files / "srv").mkdir()
    (files / "srv" / "hello.txt").write_text("hello from the image\n")
    owned = files / "srv" / "owned-by-app"
    owned.write_text("private\n")
    os.chown(owned, 1000, 1000)
    owned.chmod(0o640)
    (files / "srv" / "link").symlink_to("hello.txt")
    app = image_builder.push(files, registry, "app", "v1", APP_CONFIG)
    other_files = tmp_path_factory.mktemp("other")
    (other_files / "data").write_text("other\n")
    other = image_builder.push(other_files, registry, "other", "v1", BuildConfig(cmd=["/data"]))
    return Pushed(app, other)


@pytest.fixture
def store(tmp_path) -> ImageStore:
    return ImageStore(tmp_path / "images")


def test_pull_by_tag(store: ImageStore, pushed: Pushed):
    image = store.pull(pushed.app)
    assert image.digest.startswith("sha256:") and len(image.digest) == 71
    assert image.rootfs == store.root / "sha256" / image.digest.removeprefix("sha256:") / "rootfs"
    assert image.config == ImageConfig(
        entrypoint=("/bin/sh", "-c"),
        cmd=(SCRIPT,),
        env=("GREETING=hello", "PATH=/bin"),
        working_dir="/srv",
        user="app",
        exposed_ports=("8080/tcp",),
    )
    assert store.get(image.digest) == image
    assert store.digests() == {image.digest}


def test_rootfs_keeps_contents_owners_and_modes(store: ImageStore, pushed: Pushed):
    rootfs = store.pull(pushed.app).rootfs
    assert (rootfs / "srv" / "hello.txt").read_text() == "hello from the image\n"
    assert os.readlink(rootfs / "srv" / "link") == "hello.txt"
    assert os.readlink(rootfs / "bin" / "sh") == "busybox"
    owned = (rootfs / "srv" / "owned-by-app").stat()
    assert (owned.st_uid, owned.st_gid, stat.S_IMODE(owned.st_mode)) == (1000, 1000, 0o640)
    busybox = (rootfs / "bin" / "busybox").stat()
    assert (busybox.st_uid, busybox.st_gid, stat.S_IMODE(busybox.st_mode)) == (0, 0, 0o755)
    assert stat.S_IMODE((rootfs / "tmp").stat().st_mode) == 0o1777


def test_the_computed_process_runs_in_the_rootfs(store: ImageStore, pushed: Pushed):
    image = store.pull(pushed.app)
    process = process_for(image, DockerSource(), {"GREETING": "hi"})
    assert process.argv == ["/bin/sh", "-c", SCRIPT]
    assert (process.user, process.workdir) == ("1000:1000", "/srv")
    assert process.env == {"GREETING": "hi", "PATH": "/bin", "HOME": "/home/app"}
    # chroot stands in for the sandbox here: enough to show the rootfs and process fit.
    done = subprocess.run(
        [
            shutil.which("chroot") or "chroot",
            f"--userspec={process.user}",
            str(image.rootfs),
            "/bin/sh",
            "-c",
            f'cd {process.workdir} && exec "$@"',
            "sh",
            *process.argv,
        ],
        env=process.env,
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    assert done.stdout == "hi from 1000:1000 in /srv\n"


def test_pull_by_digest(tmp_path, store: ImageStore, pushed: Pushed, registry: Registry):
    digest = store.pull(pushed.app).digest
    fresh = ImageStore(tmp_path / "fresh")
    image = fresh.pull(f"{registry.host}/app@{digest}")
    assert image.digest == digest
    assert (image.rootfs / "srv" / "hello.txt").exists()
    assert fresh.stats == StoreStats(pulls=1, cache_hits=0)
    # A digest already unpacked is answered without the registry, even with it gone.
    assert fresh.pull(f"127.0.0.1:{free_port()}/gone@{digest}") == image
    assert fresh.stats == StoreStats(pulls=1, cache_hits=1)


def test_second_pull_uses_the_cache(store: ImageStore, pushed: Pushed):
    first = store.pull(pushed.app)
    marker = (first.rootfs / "srv" / "hello.txt").stat().st_ino
    second = store.pull(pushed.app)
    assert second == first
    assert store.stats == StoreStats(pulls=1, cache_hits=1)
    assert (second.rootfs / "srv" / "hello.txt").stat().st_ino == marker
    assert list((store.root / "tmp").iterdir()) == []


def test_concurrent_pulls_of_one_digest_coalesce(tmp_path, pushed: Pushed):
    # Four stores on one root stand for four agents (or threads) sharing a data directory.
    stores = [ImageStore(tmp_path / "shared") for _ in range(4)]
    images = []
    threads = [
        threading.Thread(target=lambda s=s: images.append(s.pull(pushed.app))) for s in stores
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(images) == 4 and len({i.digest for i in images}) == 1
    assert sum(s.stats.pulls for s in stores) == 1
    assert sum(s.stats.cache_hits for s in stores) == 3


def test_a_moved_tag_pulls_the_new_image(
    tmp_path, store: ImageStore, pushed: Pushed, image_builder: ImageBuilder, registry: Registry
):
    files = tmp_path / "files"
    files.mkdir()
    (files / "v").write_text("1")
    ref = image_builder.push(files, registry, "moving", "latest", BuildConfig(cmd=["/v"]))
    first = store.pull(ref)
    (files / "v").write_text("2")
    image_builder.push(files, registry, "moving", "latest", BuildConfig(cmd=["/v"]))
    second = store.pull(ref)
    assert first.digest != second.digest
    assert (second.rootfs / "v").read_text() == "2"
    assert store.stats == StoreStats(pulls=2, cache_hits=0)


def test_unknown_image(store: ImageStore, registry: Registry, pushed: Pushed):
    with pytest.raises(ImageNotFound) as err:
        store.pull(f"{registry.host}/nope:1")
    assert str(err.value) == f"image {registry.host}/nope:1 not found in registry"
    with pytest.raises(ImageNotFound) as err:
        store.pull(f"{registry.host}/app:v404")
    assert str(err.value) == f"image {registry.host}/app:v404 not found in registry"
    assert store.digests() == set()


def test_unreachable_registry(store: ImageStore):
    host = f"127.0.0.1:{free_port()}"
    with pytest.raises(RegistryUnreachable) as err:
        store.pull(f"{host}/app:1")
    assert str(err.value).startswith(f"registry unreachable: {host} (")
    assert "connection refused" in str(err.value)


def test_prune_removes_unreferenced_images(store: ImageStore, pushed: Pushed):
    app, other = store.pull(pushed.app), store.pull(pushed.other)
    assert store.prune({app.digest, "sha256:" + "0" * 64}) == [other.digest]
    assert store.digests() == {app.digest}
    assert store.get(other.digest) is None
    assert not other.rootfs.exists()
    assert sorted(p.name for p in (store.root / "locks").iterdir()) == [
        f"{app.digest.removeprefix('sha256:')}.lock"
    ]
    assert store.prune(set()) == [app.digest]
    assert store.digests() == set()
    assert store.pull(pushed.app) == app  # and it comes back when needed
    assert store.stats == StoreStats(pulls=3, cache_hits=0)


def test_prune_clears_abandoned_work(store: ImageStore):
    abandoned = store.root / "tmp" / ("ab" * 32 + "-crashed")
    (abandoned / "layout").mkdir(parents=True)
    assert store.prune(set()) == []
    assert not abandoned.exists()


class ProcessWatch:
    """Samples every process's argv and environment, looking for `needle`, while a pull runs."""

    def __init__(self, needle: bytes) -> None:
        self.needle = needle
        self.leaks: list[str] = []  # "/proc/PID/PART" where the needle showed
        self.skopeo_seen = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch)

    def __enter__(self) -> ProcessWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.is_set():
            for pid in filter(str.isdigit, os.listdir("/proc")):
                for part in ("cmdline", "environ"):
                    try:
                        data = Path(f"/proc/{pid}/{part}").read_bytes()
                    except OSError:
                        continue
                    if self.needle in data:
                        self.leaks.append(f"/proc/{pid}/{part}")
                    self.skopeo_seen |= part == "cmdline" and data.startswith(b"skopeo\0")


def files_containing(root: Path, needle: bytes) -> list[Path]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and needle in path.read_bytes():
            found.append(path)
    return found


def test_private_registry(tmp_path, image_builder: ImageBuilder, private_registry: Registry):
    files = tmp_path / "files"
    files.mkdir()
    (files / "secret-app").write_text("x")
    ref = image_builder.push(
        files, private_registry, "private/app", "v1", BuildConfig(cmd=["/secret-app"])
    )
    store = ImageStore(tmp_path / "images")
    registry = private_registry.host

    with pytest.raises(AuthenticationRequired) as err:
        store.pull(ref)
    assert str(err.value) == (
        f"authentication required for registry {registry}: set image_registry_secret"
    )

    with pytest.raises(AuthenticationRequired) as err:
        store.pull(ref, RegistryCredentials("shoal", "wrong-password"))
    assert str(err.value) == (
        f"registry {registry} refused the credentials of image_registry_secret for {ref}"
    )

    assert private_registry.username and private_registry.password
    password = private_registry.password.encode()
    creds = RegistryCredentials(private_registry.username, private_registry.password)
    with ProcessWatch(password) as watch:
        image = store.pull(ref, creds)
    assert (image.rootfs / "secret-app").read_text() == "x"
    assert watch.skopeo_seen, "the watch should have caught skopeo running"
    assert watch.leaks == []
    assert files_containing(tmp_path, password) == []
    assert list((store.root / "tmp").iterdir()) == []


def test_plain_http_only_for_loopback_and_listed_registries(tmp_path):
    store = ImageStore(tmp_path / "images", insecure_registries={"reg.internal:5000"})
    assert store.plain_http(parse_reference("127.0.0.1:5000/app"))
    assert store.plain_http(parse_reference("localhost/app"))
    assert store.plain_http(parse_reference("reg.internal:5000/app"))
    assert not store.plain_http(parse_reference("reg.internal/app"))
    assert not store.plain_http(parse_reference("nginx"))


def test_multi_platform_image_pulls_this_machines_variant(
    tmp_path, image_builder: ImageBuilder, registry: Registry
):
    variants = {}
    for arch in ("arm64", "amd64"):
        variants[arch] = tmp_path / arch
        variants[arch].mkdir()
        (variants[arch] / "arch").write_text(arch)
    ref = image_builder.push_index(variants, registry, "multi", "v1", BuildConfig(cmd=["/x"]))
    amd64 = ImageStore(tmp_path / "amd64", architecture="amd64").pull(ref)
    arm64 = ImageStore(tmp_path / "arm64", architecture="arm64").pull(ref)
    assert ((amd64.rootfs / "arch").read_text(), (arm64.rootfs / "arch").read_text()) == (
        "amd64",
        "arm64",
    )
    assert amd64.digest != arm64.digest
    with pytest.raises(UnsupportedImage) as err:
        ImageStore(tmp_path / "s390x", architecture="s390x").pull(ref)
    assert str(err.value) == "the image has no variant for linux/s390x"
