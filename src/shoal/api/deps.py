"""What every handler needs: the platform's parts, the caller, pagination."""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from fastapi import Depends, Request
from fastapi.requests import HTTPConnection
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from shoal.core.errors import FieldError, InvalidArgument, Unauthenticated
from shoal.store import tenancy
from shoal.store.db import Database
from shoal.store.query import Page
from shoal.store.secretbox import SecretBox
from shoal.store.tables import Organization

MAX_LIMIT = 100
DEFAULT_LIMIT = 10
MAX_OFFSET = 2**63 - 1  # the largest integer the databases take
# How long a verified token is trusted without asking the store again. A credential deleted
# through this process is forgotten at once; through another API process, within this time.
TOKEN_TTL_S = 30.0


class PrincipalCache:
    """Verified tokens (by hash) -> who they are: one dict lookup instead of a query."""

    def __init__(self, ttl: float = TOKEN_TTL_S) -> None:
        self._ttl = ttl
        self._entries: dict[str, tuple[float, tenancy.Principal]] = {}

    def get(self, token_hash: str) -> tenancy.Principal | None:
        entry = self._entries.get(token_hash)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, token_hash: str, who: tenancy.Principal) -> None:
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[token_hash] = (time.monotonic() + self._ttl, who)

    def forget(self, credential_id: str) -> None:
        for key, (_, who) in list(self._entries.items()):
            if who.credential_id == credential_id:
                del self._entries[key]


class NodeSignals:
    """Wakes agents long-polling for their assignments when those change (any thread)."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def event(self, node_id: str) -> asyncio.Event:
        """The node's event, for a waiter on the event loop."""
        self._loop = asyncio.get_running_loop()
        return self._events.setdefault(node_id, asyncio.Event())

    def notify(self, node_ids: Iterable[str]) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._set, list(node_ids))

    def _set(self, node_ids: list[str]) -> None:
        for node_id in node_ids:
            if node_id in self._events:
                self._events[node_id].set()


@dataclass
class Platform:
    db: Database
    box: SecretBox
    regions: tuple[str, ...]  # regions offered, the first is the default
    base_domain: str
    local_git: bool = False  # services may build repositories on the node's disk
    hint: Callable[[Iterable[str]], None] = lambda _ids: None  # wake the control loop
    principals: PrincipalCache = field(default_factory=PrincipalCache)
    agent_token_hash: str = ""  # SHA-256 of the token node agents present; empty: none may
    nodes: NodeSignals = field(default_factory=NodeSignals)
    _org_names: dict[str, str] = field(default_factory=dict)

    def org_name(self, org_id: str) -> str:
        """Organization names never change, so they are cached."""
        name = self._org_names.get(org_id)
        if name is None:
            with self.db.session() as s:
                org = s.get(Organization, org_id)
                name = org.name if org else ""
            self._org_names[org_id] = name
        return name


# Dependencies are `async def` where they do no blocking I/O: a sync one costs a thread hop.


async def platform(request: HTTPConnection) -> Platform:
    p: Platform = request.app.state.platform
    return p


# Declares the scheme in /openapi.json (named as in Koyeb's reference); `principal` reads
# the header itself, so that a bare token works too and errors keep Koyeb's body.
BEARER = HTTPBearer(scheme_name="Bearer", auto_error=False)


async def principal(
    request: Request,
    p: Platform = Depends(platform),
    _declared: HTTPAuthorizationCredentials | None = Depends(BEARER),
) -> tenancy.Principal:
    return await authenticate_token(p, request.headers.get("authorization", ""))


async def authenticate_token(
    p: Platform, header: str, ws_protocols: list[str] | None = None
) -> tenancy.Principal:
    """Who `Authorization: Bearer <token>` is (a bare token works too); WebSockets may send
    the token as Koyeb's clients do, in `Sec-WebSocket-Protocol: Bearer, <token>`."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        token = header  # a bare token, as a client configured without the prefix sends
    token = token.strip()
    if not token and ws_protocols and len(ws_protocols) == 2 and ws_protocols[0] == "Bearer":
        token = ws_protocols[1]
    if not token:
        raise Unauthenticated("Missing API token: send 'Authorization: Bearer <token>'")
    token_hash = tenancy.hash_token(token)
    who = p.principals.get(token_hash)
    if who is None:
        who = await run_in_threadpool(_authenticate, p, token_hash)
        p.principals.put(token_hash, who)
    return who


def _authenticate(p: Platform, token_hash: str) -> tenancy.Principal:
    with p.db.read() as s:
        return tenancy.authenticate(s, token_hash)


class Paged(BaseModel):
    """Koyeb's pagination parameters. Each list endpoint takes its query parameters as one
    model extending this: FastAPI reads a model in a third of the time it takes to read the
    same parameters one by one."""

    limit: int | None = Field(
        None,
        ge=0,
        le=MAX_LIMIT,
        description="The number of items to return (at most 100; 0: the default, 10)",
    )
    offset: int | None = Field(
        None, ge=0, le=MAX_OFFSET, description="The offset in the list of items to return"
    )

    @property
    def page(self) -> Page:
        return Page(limit=self.limit or DEFAULT_LIMIT, offset=self.offset or 0)


def newest_first(order: str | None) -> bool:
    if order in (None, "", "desc", "DESC"):
        return True
    if order in ("asc", "ASC"):
        return False
    raise InvalidArgument("Validation error", [FieldError("order", "must be asc or desc")])


async def node_agent(request: HTTPConnection, p: Platform = Depends(platform)) -> None:
    """Only node agents, with the platform's agent token, reach `/internal/v1/...`."""
    header = request.headers.get("authorization", "")
    token = header.partition(" ")[2].strip() if " " in header else header.strip()
    if not p.agent_token_hash or not hmac.compare_digest(
        tenancy.hash_token(token), p.agent_token_hash
    ):
        raise Unauthenticated("This endpoint is for node agents: present the agent token")
