"""/v1/streams/logs/query and the WebSocket /v1/streams/logs/tail."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
from datetime import UTC, datetime, timedelta
from typing import Literal

from fastapi import APIRouter, Depends, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool

from shoal.api.deps import Platform, QueryOf, authenticate_token, platform, principal
from shoal.api.routing import RetryOnConflict
from shoal.api.schemas.common import ERROR_RESPONSES
from shoal.core.errors import ShoalError
from shoal.store import logs as log_store
from shoal.store.tables import LogEntry
from shoal.store.tenancy import Principal

router = APIRouter(route_class=RetryOnConflict, tags=["Logs"], responses=ERROR_RESPONSES)
QUERY_WINDOW = timedelta(minutes=15)
TAIL_WINDOW = timedelta(hours=24)
FOLLOW_S = 0.5
Stream = Literal["stdout", "stderr", "koyeb"]


class LogLine(BaseModel):
    msg: str
    created_at: datetime
    labels: dict[str, str]


class Pagination(BaseModel):
    has_more: bool
    next_start: datetime | None = None
    next_end: datetime | None = None


class QueryLogsReply(BaseModel):
    data: list[LogLine]
    pagination: Pagination


def _line(row: LogEntry) -> LogLine:
    return LogLine(
        msg=row.msg,
        created_at=row.created_at,
        labels={
            "type": row.type,
            "stream": row.stream,
            "organization_id": row.organization_id,
            "app_id": row.app_id,
            "service_id": row.service_id,
            "deployment_id": row.deployment_id,
            "regional_deployment_id": row.regional_deployment_id,
            "instance_id": row.instance_id,
            "region": row.region,
        },
    )


class LogFilters(BaseModel):
    """The filters both endpoints take (Koyeb's query parameters)."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["runtime", "build"] = "runtime"
    app_id: str | None = None
    service_id: str | None = None
    deployment_id: str | None = None
    regional_deployment_id: str | None = None
    instance_id: str | None = None
    instance_ids: list[str] = []
    stream: Stream | None = None
    streams: list[Stream] = []
    start: datetime | None = Field(None, description="Default: 15 minutes ago (tail: 24 h)")
    end: datetime | None = Field(None, description="Default: now")
    order: Literal["asc", "desc"] = "desc"
    limit: int = Field(100, ge=1, le=1000)
    regex: str | None = Field(None, max_length=512)
    text: str | None = Field(None, max_length=512)
    regions: list[str] = Field([], description="Accepted; lines carry their region label")

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as e:
                raise ValueError(f"not a regular expression: {e}") from None
        return value

    def query(self, who: Principal, window: timedelta) -> log_store.LogQuery:
        return log_store.LogQuery(
            organization_id=who.organization_id,
            type=self.type,
            app_id=self.app_id,
            service_id=self.service_id,
            deployment_id=self.deployment_id,
            regional_deployment_id=self.regional_deployment_id,
            instance_ids=(*self.instance_ids, *([self.instance_id] if self.instance_id else [])),
            streams=(*self.streams, *([self.stream] if self.stream else [])),
            start=self.start or datetime.now(UTC) - window,
            end=self.end,
            text=self.text,
            regex=re.compile(self.regex) if self.regex else None,
            newest_first=self.order == "desc",
            limit=self.limit,
        )


def _run(p: Platform, q: log_store.LogQuery) -> list[tuple[int, LogLine]]:
    """(row id, line) of the lines `q` selects, read in one short transaction."""
    with p.db.read() as s:
        return [(row.id, _line(row)) for row in log_store.query(s, q)]


@router.get("/v1/streams/logs/query", operation_id="QueryLogs", response_model=QueryLogsReply)
async def query_logs(
    filters: LogFilters = Depends(QueryOf(LogFilters)),
    who: Principal = Depends(principal),
    p: Platform = Depends(platform),
) -> QueryLogsReply:
    q = filters.query(who, QUERY_WINDOW)
    limit = filters.limit
    rows = [line for _, line in await run_in_threadpool(_run, p, q)]
    more = len(rows) == limit
    last = rows[-1].created_at if rows else None
    page = Pagination(
        has_more=more,
        next_start=(last if not q.newest_first else q.start) if more else None,
        next_end=(last if q.newest_first else q.end) if more else None,
    )
    return QueryLogsReply(data=rows, pagination=page)


@router.websocket("/v1/streams/logs/tail")
async def tail_logs(websocket: WebSocket) -> None:
    """The backlog (24 h by default, at most `limit` lines), then every new line as it comes."""
    p: Platform = websocket.app.state.platform
    protocols = [x.strip() for x in websocket.headers.get("sec-websocket-protocol", "").split(",")]
    try:
        who = await authenticate_token(p, websocket.headers.get("authorization", ""), protocols)
        args = websocket.query_params
        given: dict[str, object] = {"limit": 1000, **args}
        given.update({key: args.getlist(key) for key in ("instance_ids", "streams", "regions")})
        filters = LogFilters.model_validate({**given, "order": "asc"})
        q = filters.query(who, TAIL_WINDOW)
    except (ShoalError, ValidationError) as e:
        await websocket.accept(subprotocol="Bearer" if "Bearer" in protocols else None)
        code, why = (
            (e.code, e.message)
            if isinstance(e, ShoalError)
            else (
                "invalid_argument",
                "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors()),
            )
        )
        await websocket.send_json({"error": {"code": code, "message": why}})
        await websocket.close(code=1008)
        return
    await websocket.accept(subprotocol="Bearer" if "Bearer" in protocols else None)
    backlog = await run_in_threadpool(_run, p, q)
    last_id = backlog[-1][0] if backlog else 0
    with contextlib.suppress(WebSocketDisconnect):
        for _, line in backlog:
            await websocket.send_json({"result": line.model_dump(mode="json")})
        while True:
            with contextlib.suppress(TimeoutError):  # between looks, notice a client that left
                message = await asyncio.wait_for(websocket.receive(), FOLLOW_S)
                if message["type"] == "websocket.disconnect":
                    return
            follow = dataclasses.replace(q, after_id=last_id, start=None, limit=1000)
            for row_id, line in await run_in_threadpool(_run, p, follow):
                await websocket.send_json({"result": line.model_dump(mode="json")})
                last_id = row_id
