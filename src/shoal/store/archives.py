"""Archives: source trees uploaded for a deployment to build (`shoal deploy`, Koyeb's
`archive` source). `POST /v1/archives` provisions one and answers a signed upload URL; the
upload fills it once; a definition's `archive.id` then names it."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from shoal.core.errors import FieldError, InvalidArgument, NotFound, PreconditionFailed
from shoal.store.tables import Archive, utcnow

MAX_SIZE = 64 * 1024 * 1024  # bytes, what one archive may hold


def create(s: Session, org_id: str, size: int) -> Archive:
    if not 0 < size <= MAX_SIZE:
        raise InvalidArgument(
            "Validation error", [FieldError("size", f"must be between 1 and {MAX_SIZE} bytes")]
        )
    archive = Archive(organization_id=org_id, size=size)
    s.add(archive)
    s.flush()
    return archive


def upload(s: Session, archive_id: str, content: bytes) -> Archive:
    """Fill the archive (once, and within its size)."""
    archive = s.get(Archive, archive_id, with_for_update=True)
    if archive is None:
        raise NotFound("archive")
    if archive.content is not None:
        raise PreconditionFailed("this archive was uploaded already: create another")
    if len(content) > archive.size:
        raise InvalidArgument(
            "Validation error",
            [FieldError("body", f"is larger than the {archive.size} bytes provisioned")],
        )
    archive.content = content
    archive.uploaded_at = utcnow()
    return archive


def uploaded_ids(s: Session, org_id: str) -> set[str]:
    """The organization's archives that can be built from."""
    q = select(Archive.id).where(Archive.organization_id == org_id, Archive.content.is_not(None))
    return set(s.scalars(q).all())
