"""/v1/archives: provision an archive to upload a source tree into (`shoal deploy`).

Koyeb answers a signed URL of its object store; shoal answers a signed URL of its own,
`PUT /hooks/v1/archives/{id}?token=...` (outside /v1: not Koyeb's API), which takes the gzipped
tar as the body, once, within the size provisioned. The token is the archive id sealed with
the platform's key, valid for an hour: whoever holds the URL can upload, as with Koyeb's.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from shoal.api.deps import Platform, platform, principal
from shoal.api.routing import RetryOnConflict
from shoal.api.schemas.common import ERROR_RESPONSES, Empty, In, Out
from shoal.core.errors import Unauthenticated
from shoal.store import archives as archive_store
from shoal.store.tenancy import Principal

router = APIRouter(route_class=RetryOnConflict, tags=["Archives"], responses=ERROR_RESPONSES)
uploads = APIRouter(route_class=RetryOnConflict, responses=ERROR_RESPONSES, include_in_schema=False)
UPLOAD_TTL_S = 3600


class CreateArchive(In):
    size: str | int = Field(..., description="How much space to provision, in bytes")
    project_id: str | None = Field(None, description="Accepted and ignored: shoal has no projects")


class Archive(Out):
    id: str
    organization_id: str
    upload_url: str
    size: str
    created_at: datetime
    deleted_at: datetime | None = None


class CreateArchiveReply(Out):
    archive: Archive


@router.post("/v1/archives", operation_id="CreateArchive", response_model=CreateArchiveReply)
def create_archive(
    request: Request,
    body: CreateArchive = Body(...),
    who: Principal = Depends(principal),
    p: Platform = Depends(platform),
) -> CreateArchiveReply:
    size = int(body.size) if str(body.size).isdigit() else 0
    with p.db.session() as s:
        row = archive_store.create(s, who.organization_id, size)
        token = p.box.seal({"archive": row.id})
        url = (
            str(request.base_url).rstrip("/")
            + f"/hooks/v1/archives/{row.id}?token={token.decode()}"
        )
        return CreateArchiveReply(
            archive=Archive(
                id=row.id,
                organization_id=row.organization_id,
                upload_url=url,
                size=str(row.size),
                created_at=row.created_at,
            )
        )


@uploads.put("/hooks/v1/archives/{archive_id}", operation_id="UploadArchive", response_model=Empty)
async def upload_archive(
    archive_id: str,
    request: Request,
    token: str = Query("", description="The signature in the URL CreateArchive answered"),
    p: Platform = Depends(platform),
) -> Empty:
    sealed = p.box.verify(token.encode(), UPLOAD_TTL_S) or {}
    if sealed.get("archive") != archive_id:
        raise Unauthenticated("Invalid or expired upload URL: create another archive")
    content = await request.body()
    await run_in_threadpool(_store, p, archive_id, content)
    return Empty()


def _store(p: Platform, archive_id: str, content: bytes) -> None:
    with p.db.session() as s:
        archive_store.upload(s, archive_id, content)
