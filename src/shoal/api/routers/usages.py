"""/v1/usages and /v1/usages/details: the organization's instances' running seconds, as
Koyeb reports them (details also as CSV, with `Accept: text/csv`)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from shoal.api.deps import Platform, QueryOf, platform, principal
from shoal.api.schemas.common import ERROR_RESPONSES, UtcTime
from shoal.core import usage
from shoal.core.errors import FieldError, InvalidArgument
from shoal.store import usage as usage_store
from shoal.store.tenancy import Principal

router = APIRouter(tags=["Usages"], responses=ERROR_RESPONSES)
MAX_WINDOW = timedelta(days=400)
DETAIL_FIELDS = (
    "organization_id",
    "instance_id",
    "app_id",
    "app_name",
    "service_id",
    "service_name",
    "regional_deployment_id",
    "region",
    "deployment_id",
    "instance_type",
    "duration_seconds",
    "started_at",
    "terminated_at",
)


class Window(BaseModel):
    model_config = ConfigDict(extra="ignore")

    starting_time: UtcTime | None = Field(None, description="Default: this month's start")
    ending_time: UtcTime | None = Field(None, description="Default: now")

    def bounds(self, now: datetime) -> tuple[datetime, datetime]:
        start = self.starting_time or datetime(now.year, now.month, 1, tzinfo=UTC)
        end = self.ending_time or now
        if start >= end:
            why = "must be before ending_time"
            raise InvalidArgument(f"starting_time {why}", [FieldError("starting_time", why)])
        if end - start > MAX_WINDOW:
            why = f"at most {MAX_WINDOW.days} days before ending_time"
            raise InvalidArgument(f"starting_time {why}", [FieldError("starting_time", why)])
        return start, end


class DetailsQuery(Window):
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0)
    order: Literal["asc", "desc"] = "asc"


class GetOrganizationUsageReply(BaseModel):
    usage: dict[str, Any]


class GetOrganizationUsageDetailsReply(BaseModel):
    usage_details: list[dict[str, Any]]
    database_details: list[dict[str, Any]] = []
    limit: int
    offset: int
    count: int
    order: str


def _lifetimes(p: Platform, who: Principal, start: datetime, end: datetime) -> list[usage.Lifetime]:
    with p.db.read() as s:
        return usage_store.lifetimes(s, who.organization_id, start, end)


@router.get(
    "/v1/usages", operation_id="GetOrganizationUsage", response_model=GetOrganizationUsageReply
)
async def get_usage(
    q: Window = Depends(QueryOf(Window)),
    who: Principal = Depends(principal),
    p: Platform = Depends(platform),
) -> GetOrganizationUsageReply:
    """Running seconds per month, app, service, region and instance type."""
    now = datetime.now(UTC)
    start, end = q.bounds(now)
    lives = await run_in_threadpool(_lifetimes, p, who, start, end)
    return GetOrganizationUsageReply(usage=usage.usage(who.organization_id, lives, start, end, now))


@router.get(
    "/v1/usages/details",
    operation_id="GetOrganizationUsageDetails",
    response_model=GetOrganizationUsageDetailsReply,
)
async def get_usage_details(
    request: Request,
    q: DetailsQuery = Depends(QueryOf(DetailsQuery)),
    who: Principal = Depends(principal),
    p: Platform = Depends(platform),
) -> GetOrganizationUsageDetailsReply | Response:
    """One row per instance that ran in the window; CSV with `Accept: text/csv`."""
    now = datetime.now(UTC)
    start, end = q.bounds(now)
    lives = await run_in_threadpool(_lifetimes, p, who, start, end)
    rows = usage.details(lives, start, end, now)
    if q.order == "desc":
        rows.reverse()
    page = rows[q.offset : q.offset + q.limit]
    if "text/csv" in request.headers.get("accept", ""):
        return Response(_csv(page), media_type="text/csv")
    return GetOrganizationUsageDetailsReply(
        usage_details=page, limit=q.limit, offset=q.offset, count=len(rows), order=q.order
    )


def _csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=DETAIL_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                k: v.isoformat() if isinstance(v, datetime) else ("" if v is None else v)
                for k, v in row.items()
            }
        )
    return out.getvalue()
