"""The agent reads and copies a build's files on the host, as root: never through a link the
repository put there (it may point at any host file; the build sandbox, not the agent, is
where such a link may be followed)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from shoal.agent.builds import _cache_key, _own, _restore, _save, _untar
from shoal.core.buildpacks import Step


def test_links_of_the_source_are_not_followed_on_the_host(tmp_path: Path):
    host = tmp_path / "host"
    (host / "private").mkdir(parents=True)
    (host / "private" / "key").write_text("the host's secret")
    (host / "reqs").write_text("secret==1\n")
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / ".venv").symlink_to(host / "private")
    (workspace / "requirements.txt").symlink_to(host / "reqs")
    (workspace / "Procfile").symlink_to(host / "private" / "key")
    (workspace / "sub").symlink_to(host)

    assert _own(workspace, "Procfile") is None
    assert _own(workspace, "sub/reqs") is None
    assert _own(workspace, "app.py") == workspace / "app.py"

    step = Step("install", "pip install", ("requirements.txt",), (".venv",))
    linked = _cache_key(step, workspace)
    (workspace / "requirements.txt").unlink()
    assert linked == _cache_key(step, workspace)  # the link read as a missing file

    saved = tmp_path / "cache" / "0-key"
    _save(workspace, (".venv",), saved)
    assert saved.is_dir() and not (saved / ".venv").exists()  # nothing of the host copied

    (saved / ".venv").mkdir()
    (saved / ".venv" / "kept").write_text("from the cache")
    _restore(saved, workspace, (".venv",))
    assert (workspace / ".venv" / "kept").read_text() == "from the cache"
    assert (host / "private" / "key").read_text() == "the host's secret"  # not written over
    assert not (host / "private" / "kept").exists()


def test_an_archive_unpacks_within_its_bound_and_its_root(tmp_path: Path):
    def archive(*members: tuple[str, bytes]) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    bomb = archive(("zeros", bytes(2 * 2**20)))  # compresses to a few kB
    assert len(bomb) < 2**16
    with pytest.raises(tarfile.TarError, match="more than"):
        _untar(bomb, tmp_path / "a", 2**20)
    with pytest.raises(tarfile.TarError):  # outside the destination
        _untar(archive(("../escaped", b"x")), tmp_path / "b", 2**20)
    assert not (tmp_path / "escaped").exists()
    _untar(archive(("app/index.html", b"<h1>hi</h1>")), tmp_path / "c", 2**20)
    assert (tmp_path / "c" / "app" / "index.html").read_bytes() == b"<h1>hi</h1>"
