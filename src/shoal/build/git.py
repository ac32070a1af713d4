"""Git, as builds and deploy-on-push use it: check out one commit, and ask where a branch is.

Repositories are reached over https://, http://, git://, ssh:// (or scp-like `git@host:path`)
and, for one-machine setups and tests, local paths and file:// URLs. git never prompts
(a repository that wants a password fails at once) and runs no hooks on clone.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

TIMEOUT_S = 300.0
_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_ASKPASS": "/bin/false",
    # No key, configuration or known host of the node's: its own access is not the tenants'.
    "GIT_SSH_COMMAND": "ssh -F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes "
    "-o IdentityFile=/dev/null -o StrictHostKeyChecking=accept-new "
    "-o UserKnownHostsFile=/dev/null",
    "HOME": "/nonexistent",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
}


class GitError(RuntimeError):
    """git failed; the message is git's own last words."""


@dataclass(frozen=True)
class Commit:
    sha: str
    author: str
    message: str  # the subject line


def _git(*args: str, cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(
            ["git", "-c", "protocol.file.allow=always", *args],
            cwd=cwd,
            env={**os.environ, **_ENV},
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        raise GitError(f"git {args[0]} took longer than {TIMEOUT_S:.0f} s") from e
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()]
        raise GitError(lines[-1] if lines else f"git {args[0]} failed ({done.returncode})")
    return done.stdout


def checkout(repository: str, dest: Path, branch: str = "", tag: str = "", sha: str = "") -> Commit:
    """Clone `repository` into `dest` at the branch, tag or commit asked for (the default
    branch when none is); only that commit's history is fetched when it can be."""
    ref = branch or tag
    if sha:
        _git("clone", "--quiet", "--no-checkout", "--", _url(repository), str(dest))
        _git("checkout", "--quiet", "--detach", sha, cwd=dest)
    else:
        extra = ["--branch", ref] if ref else []
        _git("clone", "--quiet", "--depth", "1", *extra, "--", _url(repository), str(dest))
    sha_, author, message = _git("log", "-1", "--format=%H%n%an%n%s", cwd=dest).split("\n")[:3]
    return Commit(sha_, author, message)


def head_of(repository: str, branch: str) -> str:
    """The commit `branch` (the default branch when empty) points at, without cloning."""
    out = _git("ls-remote", "--", _url(repository), f"refs/heads/{branch}" if branch else "HEAD")
    for line in out.splitlines():
        sha, _, _ref = line.partition("\t")
        if sha:
            return sha
    raise GitError(f"no branch {branch!r} in the repository" if branch else "empty repository")


def _url(repository: str) -> str:
    """A local path as a file:// URL (git makes shallow clones only over a transport), and
    Koyeb's `github.com/org/repo` as https."""
    if repository.startswith("/"):
        return "file://" + repository
    if "://" not in repository and "@" not in repository.split("/", 1)[0]:
        return "https://" + repository
    return repository
