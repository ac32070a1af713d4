"""Session fixtures over `tests.support.registry`.

Import the ones a directory needs into its conftest.py (or a test module), e.g.
`from tests.support.fixtures import image_builder, registry  # noqa: F401`.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator

import pytest
from tests.support.registry import ImageBuilder, Registry, start_registry

REQUIRED = ("docker-registry", "buildah", "skopeo", "umoci", "busybox")


def _require_tools() -> None:
    missing = [tool for tool in REQUIRED if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run scripts/install-system-deps")


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """An open registry on loopback (plain HTTP, anyone may push and pull)."""
    _require_tools()
    started = start_registry(tmp_path_factory.mktemp("registry"))
    yield started
    started.stop()


@pytest.fixture(scope="session")
def private_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry on loopback behind basic auth; its user and random password are on it."""
    _require_tools()
    started = start_registry(
        tmp_path_factory.mktemp("private-registry"),
        username="shoal",
        password=f"pw-{secrets.token_hex(16)}",
    )
    yield started
    started.stop()


@pytest.fixture(scope="session")
def image_builder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ImageBuilder]:
    """Builds images from files and pushes them (see `ImageBuilder.push`)."""
    _require_tools()
    builder = ImageBuilder(tmp_path_factory.mktemp("buildah"))
    yield builder
    builder.close()
