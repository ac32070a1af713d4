"""Which thaw sockets the edge's activator connects to: only a node agent's, on this machine."""

from __future__ import annotations

import socket
from pathlib import Path

from shoal.edge.activator import is_agent_socket


def listening(path: Path) -> socket.socket:
    path.parent.mkdir(parents=True, exist_ok=True)
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    return s


def test_only_an_agents_own_socket(tmp_path: Path):
    ours = tmp_path / "shoal-agent-abc" / "waker.sock"
    with listening(ours):
        assert is_agent_socket(str(ours))
    with listening(tmp_path / "elsewhere" / "waker.sock") as s:
        assert not is_agent_socket(s.getsockname())  # not an agent's directory
    with listening(tmp_path / "shoal-agent-def" / "other.sock") as s:
        assert not is_agent_socket(s.getsockname())  # not its name
    plain = tmp_path / "shoal-agent-ghi" / "waker.sock"
    plain.parent.mkdir()
    plain.write_text("not a socket")
    assert not is_agent_socket(str(plain))
    assert not is_agent_socket(str(tmp_path / "shoal-agent-jkl" / "waker.sock"))  # not there
    assert not is_agent_socket("")  # a node with none
