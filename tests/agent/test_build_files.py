"""The agent reads and copies a build's files on the host, as root: never through a link the
repository put there (it may point at any host file; the build sandbox, not the agent, is
where such a link may be followed)."""

from __future__ import annotations

from pathlib import Path

from shoal.agent.builds import _cache_key, _own, _restore, _save
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
