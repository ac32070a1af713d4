"""The API's ASGI application: routers, error bodies, body limit, OpenAPI.

Reads (GET handlers, `async def`) query the store on the event loop: a read takes a fraction
of a millisecond (SQLite's WAL readers never wait for the writer), less than the two thread
hops a sync handler costs. Writes (sync handlers) run in the thread pool, where waiting for
the database's write lock blocks no one else. bench/bench_api.py measures the difference.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.types import ASGIApp

from shoal.api import errors
from shoal.api.deps import Platform, document
from shoal.api.exec_relay import ExecRelay
from shoal.api.limits import BodyLimit
from shoal.api.routers import (
    apps,
    archives,
    catalog,
    deployments,
    edge,
    events,
    git_webhooks,
    instance_exec,
    logs,
    metrics,
    nodes,
    secrets,
    services,
    tenancy,
    usages,
)
from shoal.store import archives as archive_store


def create_api(platform: Platform) -> ASGIApp:
    api = FastAPI(
        title="shoal API",
        version="1",
        description="Self-hosted serverless platform, wire-compatible with Koyeb's API v1 "
        "for the resources it serves. Authenticate with `Authorization: Bearer <token>`.",
        docs_url="/docs",
        redoc_url=None,
    )
    api.state.platform = platform
    api.state.exec_relay = ExecRelay()
    errors.install(api)
    for r in (
        apps.router,
        archives.router,
        archives.uploads,
        services.router,
        deployments.router,
        secrets.router,
        catalog.router,
        events.router,
        git_webhooks.router,
        tenancy.router,
        nodes.router,
        edge.router,
        logs.router,
        metrics.router,
        usages.router,
        instance_exec.router,
        instance_exec.internal,
    ):
        # The routers' routes join the app's own list (their paths carry their prefixes):
        # FastAPI matches an included router by trying each of its routes through a wrapper,
        # a flat list matches the same routes at a third of the cost (bench/bench_api.py).
        api.router.routes.extend(r.routes)

    document(api)

    @api.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    wrapped: ASGIApp = BodyLimit(api, larger={"/hooks/v1/archives/": archive_store.MAX_SIZE})
    return wrapped
