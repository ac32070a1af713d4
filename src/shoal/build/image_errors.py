"""Why an image could not be had. Messages are for users: they end up in a deployment's messages."""

from __future__ import annotations


class ImageError(Exception):
    """Pulling, unpacking or reading an image failed."""


class InvalidReference(ImageError):
    """The image reference is not one a registry could serve."""


class ImageNotFound(ImageError):
    """The registry answered, but has no such repository, tag or digest."""


class AuthenticationRequired(ImageError):
    """The registry wants credentials, or refused the ones it was given."""


class RegistryUnreachable(ImageError):
    """No answer from the registry: down, unknown host, TLS trouble, timeout."""


class UnsupportedImage(ImageError):
    """The image exists but shoal cannot run it (no variant for this machine, malformed)."""
