"""Deploy on push, the webhook half: GitHub and GitLab push events, signed per service.

shoal's own endpoints (Koyeb connects repositories through its GitHub app instead).
`GET /hooks/v1/git/{service_id}/secret` (with an API token) tells a service's owner where
to point the repository's webhook and the secret to sign it with (made on first asking,
stored encrypted). The hook itself carries no API token: a push is accepted only with a
valid signature (`X-Hub-Signature-256: sha256=<HMAC-SHA256 of the body>`, as GitHub signs)
or token (`X-Gitlab-Token`, as GitLab sends), and only for the branch the service tracks.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets

from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from shoal.api.deps import Platform, platform, principal
from shoal.api.routing import RetryOnConflict
from shoal.api.schemas.common import ERROR_RESPONSES, Out
from shoal.core.errors import FieldError, InvalidArgument, NotFound, Unauthenticated
from shoal.store import builds
from shoal.store import services as service_store
from shoal.store.tables import Service
from shoal.store.tenancy import Principal

# Not Koyeb's API, so neither under /v1 nor in /openapi.json (which describes Koyeb's).
router = APIRouter(
    route_class=RetryOnConflict, tags=["Git"], responses=ERROR_RESPONSES, include_in_schema=False
)


class GitWebhook(Out):
    path: str  # POST pushes here (on the API's address)
    secret: str


class GitWebhookReply(Out):
    webhook: GitWebhook


class PushReply(Out):
    deployment_id: str = ""  # empty: nothing to deploy (another branch, a known commit...)


def _path(service_id: str) -> str:
    return f"/hooks/v1/git/{service_id}"


@router.get(
    "/hooks/v1/git/{id}/secret",
    operation_id="GetGitWebhook",
    response_model=GitWebhookReply,
)
def get_webhook(
    id: str, who: Principal = Depends(principal), p: Platform = Depends(platform)
) -> GitWebhookReply:
    with p.db.session() as s:
        svc = service_store.get(s, who.organization_id, id)
        if svc.webhook_secret is None:
            svc.webhook_secret = p.box.seal({"secret": secrets.token_urlsafe(32)})
        secret = p.box.open(svc.webhook_secret)["secret"]
        return GitWebhookReply(webhook=GitWebhook(path=_path(svc.id), secret=secret))


class _Push(BaseModel):
    ref: str = ""
    after: str = ""  # GitHub
    checkout_sha: str | None = None  # GitLab
    repository: dict[str, object] = {}


@router.post("/hooks/v1/git/{service_id}", operation_id="GitPush", response_model=PushReply)
async def push(
    service_id: str,
    request: Request,
    x_hub_signature_256: str = Header("", description="GitHub: sha256=<HMAC of the body>"),
    x_gitlab_token: str = Header("", description="GitLab: the webhook's secret token"),
    x_github_event: str = Header("", description="GitHub: the event (only push deploys)"),
    p: Platform = Depends(platform),
) -> PushReply:
    body = await request.body()
    return await run_in_threadpool(
        _apply, p, service_id, body, x_hub_signature_256, x_gitlab_token, x_github_event
    )


def _apply(
    p: Platform, service_id: str, body: bytes, signature: str, token: str, event: str
) -> PushReply:
    with p.db.session() as s:
        svc = s.get(Service, service_id)
        if svc is None or svc.webhook_secret is None:
            raise NotFound("webhook")
        secret = p.box.open(svc.webhook_secret)["secret"]
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        if not (
            (signature and hmac.compare_digest(signature.encode(), expected.encode()))
            or (token and hmac.compare_digest(token.encode(), secret.encode()))
        ):
            raise Unauthenticated("Bad webhook signature")
        if event and event != "push":
            return PushReply()  # ping and other events: signed, accepted, nothing to do
        try:
            event_body = _Push.model_validate(json.loads(body or b"{}"))
        except ValueError as e:
            raise InvalidArgument(
                "Not a push event", [FieldError("body", "must be a push event")]
            ) from e
        branch = event_body.ref.removeprefix("refs/heads/")
        sha = event_body.checkout_sha or event_body.after
        if not event_body.ref.startswith("refs/heads/") or not sha.strip("0"):
            return PushReply()  # a tag, or a deleted branch
        tracked = branch
        if branch == event_body.repository.get("default_branch"):
            tracked = ""  # a service tracking no branch follows the default one
        made = builds.on_push(s, svc, branch, sha) or builds.on_push(s, svc, tracked, sha)
        deployment_id = made.id if made else ""
    if deployment_id:
        p.hint([service_id])
    return PushReply(deployment_id=deployment_id)
