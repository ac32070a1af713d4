"""The agent's wake socket and the edge's client of it, over a real Unix socket. The instance
tasks are stand-ins that only say whether they woke (tests/e2e/test_sleep.py wakes real
frozen and stopped instances through the same path)."""

from __future__ import annotations

import asyncio
import grp
import os
import stat
from pathlib import Path
from typing import Any

from shoal.agent.waker import Waker
from shoal.client.waker import wake


class Task:
    def __init__(self, wakes: bool) -> None:
        self.wakes, self.asked = wakes, 0

    async def wake(self, urgent: bool = True) -> bool:
        assert not urgent  # the edge's wake is reported with the next regular report
        self.asked += 1
        return self.wakes


def test_wake_answers_for_the_nodes_own_instances(tmp_path: Path):
    sock = tmp_path / "shoal-agent-x" / "waker.sock"
    sock.parent.mkdir()
    tasks: dict[str, Any] = {"asleep": Task(True), "stopping": Task(False)}

    async def scenario() -> list[bool]:
        server = asyncio.create_task(Waker(sock, lambda: tasks).serve())
        while not sock.exists():
            await asyncio.sleep(0.01)
        try:
            return [await wake(str(sock), i) for i in ("asleep", "stopping", "elsewhere")]
        finally:
            server.cancel()

    assert asyncio.run(scenario()) == [True, False, False]
    assert (tasks["asleep"].asked, tasks["stopping"].asked) == (1, 1)
    assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700  # the agent's user only


def test_the_edges_haproxy_group_may_ask_too(tmp_path: Path):
    """Its HAProxy drops root for the `haproxy` account and asks itself (edge/wake.lua)."""
    sock = tmp_path / "shoal-agent-x" / "waker.sock"
    sock.parent.mkdir()
    group = grp.getgrnam("nogroup").gr_gid if os.geteuid() == 0 else os.getgid()

    async def scenario() -> bool:
        server = asyncio.create_task(Waker(sock, lambda: {"i": Task(True)}, group).serve())
        while not sock.exists() or sock.stat().st_gid != group:
            await asyncio.sleep(0.01)
        try:
            return await wake(str(sock), "i")
        finally:
            server.cancel()

    assert asyncio.run(scenario())
    for where, mode in ((sock, 0o660), (sock.parent, 0o710)):
        assert (stat.S_IMODE(where.stat().st_mode), where.stat().st_gid) == (mode, group)
