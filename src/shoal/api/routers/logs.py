"""/v1/streams/logs/query and the WebSocket /v1/streams/logs/tail."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Query, WebSocket, WebSocketDisconnect
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from shoal.api.deps import Platform, authenticate_token, platform, principal
from shoal.api.routing import RetryOnConflict
from shoal.api.schemas.common import ERROR_RESPONSES
from shoal.core.errors import FieldError, InvalidArgument, ShoalError
from shoal.store import logs as log_store
from shoal.store.tables import LogEntry
from shoal.store.tenancy import Principal

router = APIRouter(route_class=RetryOnConflict, tags=["Logs"], responses=ERROR_RESPONSES)
QUERY_WINDOW = timedelta(minutes=15)
TAIL_WINDOW = timedelta(hours=24)
FOLLOW_S = 0.5


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


def _filters(
    who: Principal, params: dict[str, Any], default_window: timedelta, limit: int
) -> log_store.LogQuery:
    kind = params.get("type") or "runtime"
    if kind not in ("runtime", "build"):
        raise InvalidArgument("Validation error", [FieldError("type", "must be runtime or build")])
    streams = tuple(params.get("streams") or ()) + (
        (params["stream"],) if params.get("stream") else ()
    )
    bad = [s for s in streams if s not in ("stdout", "stderr", "koyeb")]
    if bad:
        raise InvalidArgument(
            "Validation error", [FieldError("streams", "stdout, stderr or koyeb")]
        )
    regex = None
    if params.get("regex"):
        try:
            regex = re.compile(params["regex"])
        except re.error as e:
            raise InvalidArgument("Validation error", [FieldError("regex", str(e))]) from None
    order = params.get("order") or "desc"
    if order not in ("asc", "desc"):
        raise InvalidArgument("Validation error", [FieldError("order", "must be asc or desc")])
    now = datetime.now(UTC)
    ids = tuple(params.get("instance_ids") or ()) + (
        (params["instance_id"],) if params.get("instance_id") else ()
    )
    return log_store.LogQuery(
        organization_id=who.organization_id,
        type=kind,
        app_id=params.get("app_id"),
        service_id=params.get("service_id"),
        deployment_id=params.get("deployment_id"),
        regional_deployment_id=params.get("regional_deployment_id"),
        instance_ids=ids,
        streams=streams,
        start=params.get("start") or now - default_window,
        end=params.get("end"),
        text=params.get("text"),
        regex=regex,
        newest_first=order == "desc",
        limit=limit,
    )


def _run(p: Platform, q: log_store.LogQuery) -> list[tuple[int, LogLine]]:
    """(row id, line) of the lines `q` selects, read in one short transaction."""
    with p.db.session(commit=False) as s:
        return [(row.id, _line(row)) for row in log_store.query(s, q)]


@router.get("/v1/streams/logs/query", operation_id="QueryLogs", response_model=QueryLogsReply)
async def query_logs(
    type: str | None = Query(None, description="runtime (default) or build"),
    app_id: str | None = Query(None),
    service_id: str | None = Query(None),
    deployment_id: str | None = Query(None),
    regional_deployment_id: str | None = Query(None),
    instance_id: str | None = Query(None),
    instance_ids: list[str] = Query([]),
    stream: str | None = Query(None),
    streams: list[str] = Query([]),
    start: datetime | None = Query(None, description="Default: 15 minutes ago"),
    end: datetime | None = Query(None, description="Default: now"),
    order: str | None = Query(None, description="desc (default) or asc"),
    limit: int = Query(100, ge=1, le=1000),
    regex: str | None = Query(None, max_length=512),
    text: str | None = Query(None, max_length=512),
    regions: list[str] = Query([], description="Accepted; lines carry their region label"),
    who: Principal = Depends(principal),
    p: Platform = Depends(platform),
) -> QueryLogsReply:
    q = _filters(who, locals(), QUERY_WINDOW, limit)
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
        params: dict[str, Any] = dict(websocket.query_params)
        params["instance_ids"] = websocket.query_params.getlist("instance_ids")
        params["streams"] = websocket.query_params.getlist("streams")
        params["start"] = _parse_time(params.get("start"), "start")
        params["order"] = "asc"
        limit = int(params.get("limit") or 1000)
        q = _filters(who, params, TAIL_WINDOW, max(1, min(limit, 1000)))
    except (ShoalError, ValueError) as e:
        await websocket.accept(subprotocol="Bearer" if "Bearer" in protocols else None)
        error = e if isinstance(e, ShoalError) else InvalidArgument(str(e))
        await websocket.send_json({"error": {"code": error.code, "message": error.message}})
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


def _parse_time(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(
            "Validation error", [FieldError(name, "must be an RFC 3339 time")]
        ) from None
