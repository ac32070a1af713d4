"""Manifests and indexes as registries serve them, and OCI layouts as skopeo writes them."""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path
from typing import Any

from shoal.build.image_errors import UnsupportedImage
from shoal.build.reference import DIGEST

_INDEXES = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}
_ARCHITECTURES = {
    "x86_64": "amd64",
    "aarch64": "arm64",
    "armv7l": "arm",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


def host_architecture() -> str:
    """This machine's architecture, spelled the way image platforms spell it."""
    machine = platform.machine()
    return _ARCHITECTURES.get(machine, machine)


def digest_of(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def image_digest(raw: bytes, architecture: str) -> str:
    """The digest of the image manifest to pull, given the manifest or index `raw`.

    An index (a multi-platform image) yields its linux/`architecture` entry.
    """
    document = _json(raw, "manifest")
    entries = document.get("manifests")
    if document.get("mediaType") not in _INDEXES and not isinstance(entries, list):
        return digest_of(raw)
    for entry in entries if isinstance(entries, list) else []:
        target = entry.get("platform") or {}
        digest = entry.get("digest")
        if (
            target.get("os") == "linux"
            and target.get("architecture") == architecture
            and isinstance(digest, str)
            and DIGEST.fullmatch(digest)
        ):
            return digest
    raise UnsupportedImage(f"the image has no variant for linux/{architecture}")


def layout_config(layout: Path, tag: str) -> bytes:
    """The config blob of the image tagged `tag` in the OCI layout `layout`."""
    index = _json((layout / "index.json").read_bytes(), "layout index")
    for entry in index.get("manifests") or []:
        if (entry.get("annotations") or {}).get("org.opencontainers.image.ref.name") == tag:
            manifest = _json(_blob(layout, entry.get("digest")), "manifest")
            return _blob(layout, (manifest.get("config") or {}).get("digest"))
    raise UnsupportedImage(f"the pulled image has no manifest tagged {tag!r}")


def _blob(layout: Path, digest: object) -> bytes:
    if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
        raise UnsupportedImage(f"the image refers to a malformed digest {digest!r}")
    return (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()


def _json(raw: bytes, what: str) -> dict[str, Any]:
    try:
        document = json.loads(raw)
    except ValueError:
        raise UnsupportedImage(f"the image's {what} is not JSON") from None
    if not isinstance(document, dict):
        raise UnsupportedImage(f"the image's {what} is not a JSON object")
    return document
