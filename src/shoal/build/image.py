"""Container images from any OCI registry, pulled once per digest and kept unpacked.

Layout under the store's root:

    sha256/<hex>/rootfs/       the unpacked root filesystem, shared by every instance of the
                               image; never written after unpacking (drivers mount it read-only)
    sha256/<hex>/config.json   the image's OCI config blob
    locks/<hex>.lock           held while an image is pulled or pruned
    tmp/                       work in progress: a pull's layout and rootfs before they are ready

An image directory appears whole (a rename) or not at all, so its presence means "ready". The
per-digest lock makes concurrent pulls of one digest, by threads or by agents sharing the root,
download and unpack it once. Registries on loopback, and those the store is told are insecure,
are spoken to over plain HTTP; all others over verified TLS.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from shoal.build import manifest, rootfs, skopeo
from shoal.build.image_errors import ImageError, InvalidReference, UnsupportedImage
from shoal.build.reference import DIGEST, ImageRef, parse_reference
from shoal.build.registry_auth import RegistryCredentials, auth_file
from shoal.core.definition import DockerSource
from shoal.core.process import ImageConfig, Process, ProcessError, image_process

UNPACK_TIMEOUT_S = 1800
_LAYOUT_TAG = "image"


@dataclass(frozen=True)
class Image:
    digest: str  # "sha256:<hex>" of the image manifest (the platform's, for an index)
    rootfs: Path
    config: ImageConfig


@dataclass(frozen=True)
class StoreStats:
    pulls: int  # images this store downloaded and unpacked
    cache_hits: int  # pulls answered by an image already unpacked


class ImageStore:
    def __init__(
        self,
        root: Path,
        *,
        insecure_registries: Iterable[str] = (),
        architecture: str | None = None,
    ) -> None:
        self.root = root
        self._insecure = frozenset(insecure_registries)
        self._architecture = architecture or manifest.host_architecture()
        self._images = root / "sha256"
        self._locks = root / "locks"
        self._tmp = root / "tmp"
        for directory in (self._images, self._locks, self._tmp):
            directory.mkdir(parents=True, exist_ok=True)
        self._tmp.chmod(0o700)
        self._counter_lock = threading.Lock()
        self._pulls = 0
        self._hits = 0

    @property
    def stats(self) -> StoreStats:
        with self._counter_lock:
            return StoreStats(self._pulls, self._hits)

    def pull(self, reference: str, credentials: RegistryCredentials | None = None) -> Image:
        """The image `reference` names, downloaded and unpacked unless already here.

        A tag is resolved on every call (it may have moved); a digest already unpacked is
        answered without asking the registry. Raises `ImageError` subclasses.
        """
        ref = parse_reference(reference)
        if ref.digest is not None and (image := self.get(ref.digest)) is not None:
            self._count(hit=True)
            return image
        with ExitStack() as stack:
            auth = None
            if credentials is not None:
                auth = stack.enter_context(auth_file(ref.registry, credentials))
            remote = skopeo.Remote(
                ref, tls_verify=not self.plain_http(ref), auth=auth, tmpdir=self._tmp
            )
            digest = self._resolve(remote)
            with self._lock(digest):
                cached = self.get(digest)
                image = cached or self._fetch(remote, digest)
        self._count(hit=cached is not None)
        return image

    def get(self, digest: str) -> Image | None:
        """The unpacked image with manifest digest `digest`, if this store has it."""
        if not DIGEST.fullmatch(digest):
            raise InvalidReference(f"invalid image digest {digest!r}")
        directory = self._dir(digest)
        try:
            blob = json.loads((directory / "config.json").read_bytes())
        except FileNotFoundError:
            return None
        return Image(digest, directory / "rootfs", ImageConfig.from_oci(blob))

    def digests(self) -> set[str]:
        """The digests of the images unpacked here."""
        found = (f"sha256:{entry.name}" for entry in self._images.iterdir())
        return {digest for digest in found if DIGEST.fullmatch(digest)}

    def digest_of(self, rootfs: Path) -> str | None:
        """The digest of the image whose unpacked root is `rootfs`, if it is one of ours."""
        if rootfs.parent.parent != self._images or rootfs.name != "rootfs":
            return None
        digest = f"sha256:{rootfs.parent.name}"
        return digest if DIGEST.fullmatch(digest) else None

    def prune(self, keep: Collection[str]) -> list[str]:
        """Remove the unpacked images whose digest is not in `keep`, and abandoned work.

        An image being pulled or pruned by someone else right now is left alone. Returns the
        digests removed.
        """
        removed = []
        for digest in sorted(self.digests() - set(keep)):
            with self._try_lock(digest) as locked:
                if locked:
                    shutil.rmtree(self._dir(digest))
                    removed.append(digest)
        for work in self._tmp.iterdir():
            with self._try_lock(f"sha256:{work.name.partition('-')[0]}") as locked:
                if locked:
                    shutil.rmtree(work, ignore_errors=True)
        return removed

    def _resolve(self, remote: skopeo.Remote) -> str:
        raw = skopeo.inspect_raw(remote, remote.ref.source())
        if remote.ref.digest is not None and manifest.digest_of(raw) != remote.ref.digest:
            raise UnsupportedImage(f"the registry served a manifest that is not {remote.ref}")
        return manifest.image_digest(raw, self._architecture)

    def _fetch(self, remote: skopeo.Remote, digest: str) -> Image:
        """Download and unpack `digest` (its lock held); the image directory appears whole."""
        work = Path(tempfile.mkdtemp(prefix=f"{_hex(digest)}-", dir=self._tmp))
        try:
            layout, staged = work / "layout", work / "image"
            skopeo.copy_to_layout(remote, remote.ref.pinned(digest), layout, _LAYOUT_TAG)
            blob = manifest.layout_config(layout, _LAYOUT_TAG)
            try:
                config = ImageConfig.from_oci(json.loads(blob))
            except (ValueError, ProcessError) as e:
                raise UnsupportedImage(f"image {remote.ref}: {e}") from None
            staged.mkdir()
            staged.chmod(0o755)
            unpack_layout(layout, _LAYOUT_TAG, staged / "rootfs", str(remote.ref))
            (staged / "config.json").write_bytes(blob)
            staged.rename(self._dir(digest))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return Image(digest, self._dir(digest) / "rootfs", config)

    def plain_http(self, ref: ImageRef) -> bool:
        """Whether `ref`'s registry is spoken to without TLS: on loopback, or listed insecure."""
        return ref.is_loopback() or ref.registry in self._insecure

    def _dir(self, digest: str) -> Path:
        return self._images / _hex(digest)

    def _lock_path(self, digest: str) -> Path:
        return self._locks / f"{_hex(digest)}.lock"

    @contextmanager
    def _lock(self, digest: str) -> Iterator[None]:
        fd = self._acquire(digest, blocking=True)
        try:
            yield
        finally:
            os.close(fd)

    @contextmanager
    def _try_lock(self, digest: str) -> Iterator[bool]:
        """Holds the digest's lock if it is free; the lock file goes with the image."""
        if not DIGEST.fullmatch(digest):  # a stray file in tmp/: not a pull's work
            yield True
            return
        fd = self._acquire(digest, blocking=False)
        if fd < 0:
            yield False
            return
        try:
            yield True
            if not self._dir(digest).exists():
                self._lock_path(digest).unlink(missing_ok=True)
        finally:
            os.close(fd)

    def _acquire(self, digest: str, *, blocking: bool) -> int:
        """An fd holding the digest's lock file, or -1 when not blocking and it is taken.

        Retries when the file it locked was unlinked meanwhile (pruned), so that two holders
        never hold two different files.
        """
        path = self._lock_path(digest)
        while True:
            fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return -1
            try:
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    return fd
            except FileNotFoundError:
                pass
            os.close(fd)

    def _count(self, *, hit: bool) -> None:
        with self._counter_lock:
            if hit:
                self._hits += 1
            else:
                self._pulls += 1


def process_for(image: Image, source: DockerSource, env: Mapping[str, str]) -> Process:
    """The process an instance of `image` runs under the definition's `source` and `env`."""
    return image_process(image.config, source, env, rootfs.read_users(image.rootfs))


def unpack_layout(layout: Path, tag: str, target: Path, what: str) -> None:
    """Unpack the image tagged `tag` in the OCI layout `layout` into the root `target`."""
    # As root, umoci keeps the layers' owners, modes and special files as they are.
    try:
        done = subprocess.run(
            ["umoci", "raw", "unpack", "--image", f"{layout}:{tag}", str(target)],
            capture_output=True,
            timeout=UNPACK_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError:
        raise ImageError("umoci is not installed: run scripts/install-system-deps") from None
    except subprocess.TimeoutExpired:
        raise ImageError(f"unpacking image {what} took over {UNPACK_TIMEOUT_S} s") from None
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines() or ["no message"]
        raise ImageError(f"unpacking image {what} failed: {lines[-1]}")


def _hex(digest: str) -> str:
    return digest.removeprefix("sha256:")
