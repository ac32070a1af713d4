"""What every handler needs: the platform's parts, the caller, pagination."""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, get_origin

from fastapi import Depends, FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.requests import HTTPConnection
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from shoal.core.edge import app_domain
from shoal.core.errors import FieldError, InvalidArgument, Unauthenticated
from shoal.core.metrics import RequestMetrics
from shoal.store import tenancy
from shoal.store.db import Database
from shoal.store.query import Page
from shoal.store.secretbox import SecretBox
from shoal.store.tables import App, Organization

MAX_LIMIT = 100
DEFAULT_LIMIT = 10
MAX_OFFSET = 2**63 - 1  # the largest integer the databases take
# How long a verified token is trusted without asking the store again. A credential deleted
# through this process is forgotten at once; through another API process, within this time.
TOKEN_TTL_S = 5.0


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


EDGE_SIGNAL = "edge"  # set by the nodes' reports: the edge's routes may have changed


class NodeSignals:
    """Wakes agents long-polling for their assignments when those change, and the edge
    long-polling for its routes (EDGE_SIGNAL) when a node reports (any thread)."""

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
    # The edge's request metrics: held by the API process the edge's writes reach.
    metrics: RequestMetrics = field(default_factory=RequestMetrics)
    _org_names: dict[str, str] = field(default_factory=dict)

    def domains(self, s: Session, app_ids: set[str]) -> dict[str, str]:
        """The public domain of each of the apps."""
        if not app_ids:
            return {}
        rows = s.execute(select(App.id, App.name, App.organization_id).where(App.id.in_(app_ids)))
        return {i: app_domain(name, self.org_name(org), self.base_domain) for i, name, org in rows}

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


async def principal(request: Request) -> tenancy.Principal:
    """The caller. A dependency with no dependencies of its own: FastAPI's cost of solving
    dependencies grows with their number, on every request."""
    p: Platform = request.app.state.platform
    return await authenticate_token(p, request.headers.get("authorization", ""))


def document(api: FastAPI) -> None:
    """Complete /openapi.json with what FastAPI cannot see in the handlers' signatures: the
    scheme `principal` implements (named as in Koyeb's reference) on each operation that
    depends on it, and the query parameters each `QueryOf` reads. A security dependency
    would declare the first, and FastAPI's own query models the second, at a cost on every
    request."""
    build = api.openapi

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is not None:
            return api.openapi_schema
        schema = build()
        schema.setdefault("components", {})["securitySchemes"] = {
            "Bearer": {"type": "http", "scheme": "bearer"}
        }
        for route in api.routes:
            if not isinstance(route, APIRoute) or not route.include_in_schema:
                continue
            calls = _calls(route.dependant)
            for method in route.methods or ():
                op = schema["paths"][route.path_format][method.lower()]
                if principal in calls:
                    op["security"] = [{"Bearer": []}]
                for call in calls:
                    if isinstance(call, QueryOf):
                        op.setdefault("parameters", []).extend(call.parameters())
        return schema

    api.openapi = openapi  # type: ignore[method-assign]


def _calls(dependant: Dependant) -> list[Any]:
    """Every dependency of a handler, theirs too."""
    return [c for d in dependant.dependencies for c in (d.call, *_calls(d))]


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


Q = TypeVar("Q", bound=BaseModel)


class QueryOf(Generic[Q]):
    """A dependency that reads the query string into a model, documented in /openapi.json
    by `document`. FastAPI reads a model of query parameters itself at a cost that grows
    with its fields, on every request (it re-inspects each field's type each time): this
    one looks at the model once.

    Repeated parameters fill list fields (`?types=WEB&types=WORKER`); for the rest, the
    last value counts; unknown parameters are ignored. A bad value is the same 400 as a
    bad body field, naming the parameter."""

    def __init__(self, model: type[Q]) -> None:
        self.model = model
        self._lists = frozenset(
            f.alias or name
            for name, f in model.model_fields.items()
            if get_origin(f.annotation) is list
        )

    async def __call__(self, request: Request) -> Q:
        args = request.query_params
        values = {k: args.getlist(k) if k in self._lists else v for k, v in args.items()}
        try:
            return self.model.model_validate(values)
        except ValidationError as e:
            errors = [{**err, "loc": ("query", *err["loc"])} for err in e.errors()]
            raise RequestValidationError(errors) from None

    def parameters(self) -> list[dict[str, Any]]:
        """The model's fields as OpenAPI query parameters."""
        schema = self.model.model_json_schema(ref_template="#/components/schemas/{model}")
        required = set(schema.get("required", ()))
        out = []
        for name, prop in schema["properties"].items():
            prop = dict(prop)
            description = prop.pop("description", None)
            param = {"name": name, "in": "query", "required": name in required, "schema": prop}
            if description:
                param["description"] = description
            out.append(param)
        return out


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
