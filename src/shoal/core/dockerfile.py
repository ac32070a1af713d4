"""What a Dockerfile builds from (pure): the images its stages start FROM.

The builder pulls them before the build (outside the build's sandbox, as the platform pulls
any image) so that the build itself runs with no way to the host: FROM a registry on the
node's loopback works, a RUN step reaching the host does not.
"""

from __future__ import annotations

import re

_FROM = re.compile(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?\s*$", re.IGNORECASE)
_CONTINUED = re.compile(r"\\\s*\n")


class DockerfileError(ValueError):
    """The Dockerfile cannot be built; the message says why."""


def base_images(text: str) -> list[str]:
    """The images the stages start FROM, in order, without repeats: not `scratch`, not an
    earlier stage's name."""
    stages: set[str] = set()
    images: list[str] = []
    for line in _CONTINUED.sub(" ", text).splitlines():
        found = _FROM.match(line)
        if found is None:
            continue
        image, name = found[1], found[2]
        if "$" in image:
            raise DockerfileError(f"FROM {image}: build arguments in FROM are not supported")
        if image.lower() not in stages and image != "scratch" and image not in images:
            images.append(image)
        if name:
            stages.add(name.lower())
    if not stages and not images and "scratch" not in text:
        raise DockerfileError("the Dockerfile has no FROM instruction")
    return images
