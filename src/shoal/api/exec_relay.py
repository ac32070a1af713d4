"""Exec sessions waiting for, or joined to, the agent of their instance's node (in memory).

The control plane never connects to nodes: a user's session is listed in its node's
assignments until the agent, woken from its long poll, connects back to
`/internal/v1/exec/{session_id}`. Sessions live in the API process that took the user's
WebSocket, which is where the agent's long poll and WebSocket land with one API process.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from dataclasses import dataclass, field

from fastapi import WebSocket
from fastapi.requests import HTTPConnection

from shoal.core.assignment import ExecSession


@dataclass
class Session:
    spec: ExecSession
    node_id: str
    agent: asyncio.Future[WebSocket]  # the agent's WebSocket, once it connected
    done: asyncio.Event = field(default_factory=asyncio.Event)  # the session is over


class ExecRelay:
    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}

    def open(self, node_id: str, instance_id: str, command: list[str], tty: bool) -> Session:
        spec = ExecSession(
            session_id=uuid.uuid4().hex, instance_id=instance_id, command=command, tty=tty
        )
        session = Session(spec, node_id, asyncio.get_running_loop().create_future())
        self._sessions[spec.session_id] = session
        return session

    def close(self, session: Session) -> None:
        self._sessions.pop(session.spec.session_id, None)
        session.done.set()

    def pending(self, node_id: str) -> list[ExecSession]:
        """The node's sessions its agent has not joined yet."""
        return [
            s.spec for s in self._sessions.values() if s.node_id == node_id and not s.agent.done()
        ]

    def fingerprint(self, node_id: str) -> str:
        """A suffix for the node's assignments ETag: empty unless sessions are pending."""
        ids = sorted(s.session_id for s in self.pending(node_id))
        return "+" + hashlib.sha256(" ".join(ids).encode()).hexdigest()[:16] if ids else ""

    def join(self, session_id: str, agent: WebSocket) -> Session | None:
        """Hand the agent's WebSocket to the session waiting for it (None: no such session,
        or one already joined)."""
        session = self._sessions.get(session_id)
        if session is None or session.agent.done():
            return None
        session.agent.set_result(agent)
        return session


async def exec_relay(conn: HTTPConnection) -> ExecRelay:
    relay: ExecRelay = conn.app.state.exec_relay
    return relay
