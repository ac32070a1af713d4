"""Image references, normalized as Docker does: `nginx` is `docker.io/library/nginx:latest`."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from shoal.build.image_errors import InvalidReference

DOCKER_HUB = "docker.io"
_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io"}

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_DOMAIN = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class ImageRef:
    registry: str  # host[:port], "docker.io" for Docker Hub
    repository: str  # path in the registry, "library/nginx"
    tag: str | None  # None only when a digest pins the image
    digest: str | None  # "sha256:<hex>" when the reference pins one

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        tag = f":{self.tag}" if self.tag else ""
        digest = f"@{self.digest}" if self.digest else ""
        return f"{self.name}{tag}{digest}"

    def pinned(self, digest: str) -> str:
        """This repository at exactly `digest`, as skopeo's docker transport takes it."""
        return f"docker://{self.name}@{digest}"

    def source(self) -> str:
        """The reference as skopeo's docker transport takes it (a digest wins over a tag)."""
        return self.pinned(self.digest) if self.digest else f"docker://{self.name}:{self.tag}"

    def is_loopback(self) -> bool:
        """Whether the registry is on this machine (such registries speak plain HTTP)."""
        if self.registry.startswith("["):  # [IPv6]:port
            host = self.registry[1:].partition("]")[0]
        else:
            host = self.registry.partition(":")[0]
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False


def parse_reference(text: str) -> ImageRef:
    """Parse and normalize `[registry/]repository[:tag][@digest]`."""
    reference = text.strip()
    name, _, digest = reference.partition("@")
    if digest and not DIGEST.fullmatch(digest):
        raise InvalidReference(
            f"invalid image reference {text!r}: the digest must be sha256:<64 hex digits>"
        )
    tag: str | None = None
    last_slash = name.rfind("/")
    if name.rfind(":") > last_slash:
        name, _, tag = name.rpartition(":")
        if not _TAG.fullmatch(tag):
            raise InvalidReference(f"invalid image reference {text!r}: bad tag {tag!r}")
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, rest
        if not _DOMAIN.fullmatch(registry):
            raise InvalidReference(f"invalid image reference {text!r}: bad registry {registry!r}")
    else:
        registry, path = DOCKER_HUB, name
    if registry in _HUB_ALIASES:
        registry = DOCKER_HUB
        if "/" not in path:
            path = f"library/{path}"
    if not all(_COMPONENT.fullmatch(part) for part in path.split("/")):
        raise InvalidReference(
            f"invalid image reference {text!r}: a repository is lowercase letters, digits "
            "and separators (. _ -), in parts joined by /"
        )
    if tag is None and not digest:
        tag = "latest"
    return ImageRef(registry, path, tag, digest or None)
