"""End-to-end fixtures: a registry with test images, and `shoal up` with its node agent."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import Shoal, start_shoal
from tests.support.fixtures import image_builder, registry  # noqa: F401
from tests.support.registry import BuildConfig, ImageBuilder, Registry, busybox_rootfs


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shoal]:
    yield from running_platform(tmp_path_factory.mktemp("e2e") / "data")


def running_platform(
    data_dir: Path, *extra: str, env: dict[str, str] | None = None
) -> Iterator[Shoal]:
    """`shoal up` with its node agent, for a module's tests; at the end its apps are deleted
    (and their instances with them) before it stops."""
    if os.geteuid() != 0:
        pytest.skip("instances need root: namespaces, cgroups and veth pairs")
    s = start_shoal(data_dir, None, *extra, agents=True, env=env)
    yield s
    # Instances outlive `shoal up` (they are adopted at its next start): delete them first.
    with s.client() as api:
        for app in api.get("/v1/apps", params={"limit": 100}).json()["apps"]:
            api.delete(f"/v1/apps/{app['id']}")
        deadline = time.monotonic() + 60
        while api.get("/v1/apps").json()["count"] and time.monotonic() < deadline:
            time.sleep(0.2)
    s.stop()


def push_web_image(
    builder: ImageBuilder, reg: Registry, root: Path, name: str, body: str, **config: object
) -> str:
    """A busybox image whose httpd serves `body` on port 8000 (unless `config` says else)."""
    files = busybox_rootfs(root / name)
    (files / "www").mkdir()
    (files / "www" / "index.html").write_text(body)
    entry = ["/bin/busybox", "httpd", "-f", "-v", "-p", "8000", "-h", "/www"]
    return builder.push(files, reg, name, config=BuildConfig(entrypoint=entry, **config))  # type: ignore[arg-type]


def cgi_image(
    builder: ImageBuilder, reg: Registry, root: Path, name: str, scripts: dict[str, str]
) -> str:
    """A busybox image whose httpd, on port 8000, serves "ok" at /index.html and runs each
    of `scripts` (name -> shell script) at /cgi-bin/<name>."""
    files = busybox_rootfs(root / name)
    (files / "www" / "cgi-bin").mkdir(parents=True)
    (files / "www" / "index.html").write_text("ok")
    for script, text in scripts.items():
        path = files / "www" / "cgi-bin" / script
        path.write_text(text)
        path.chmod(0o755)
    entry = ["/bin/busybox", "httpd", "-f", "-p", "8000", "-h", "/www"]
    return builder.push(files, reg, name, config=BuildConfig(entrypoint=entry))
