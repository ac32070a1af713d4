"""/internal/v1/nodes: how node agents register, learn their assignments (and the builds and
exec sessions waiting for them) and report back.

shoal's own protocol (not Koyeb's API), authenticated with the platform's agent token, and
left out of /openapi.json, which describes the API users call (core/assignment.py holds the
protocol's messages).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from fastapi import APIRouter, Body, Depends, Query, Response
from starlette.concurrency import run_in_threadpool

from shoal.api.deps import EDGE_SIGNAL, Platform, node_agent, platform
from shoal.api.exec_relay import ExecRelay, exec_relay
from shoal.api.routing import RetryOnConflict
from shoal.api.schemas.common import ERROR_RESPONSES, Empty
from shoal.core.assignment import AssignmentList, NodeHello, NodeReply, ReportBatch
from shoal.core.errors import NotFound
from shoal.store import builds, logs, nodes
from shoal.store.tables import Node

router = APIRouter(
    route_class=RetryOnConflict,
    prefix="/internal/v1/nodes",
    tags=["Node agents"],
    responses=ERROR_RESPONSES,
    dependencies=[Depends(node_agent)],
    include_in_schema=False,
)
MAX_WAIT_S = 30.0


@router.post("", operation_id="RegisterNode", response_model=NodeReply)
def register(hello: NodeHello = Body(...), p: Platform = Depends(platform)) -> NodeReply:
    with p.db.session() as s:
        return NodeReply(node_id=nodes.register(s, hello).id)


def _fingerprint(p: Platform, node_id: str) -> str:
    with p.db.session() as s:
        if s.get(Node, node_id) is None:
            raise NotFound("node")
        return nodes.fingerprint(s, node_id)


def _assignments(p: Platform, node_id: str) -> AssignmentList:
    with p.db.read() as s:
        return AssignmentList(
            node_id=node_id,
            assignments=nodes.assignments(s, p.box, node_id, p.base_domain),
            builds=builds.jobs(s, p.box, node_id),
        )


@router.get("/{node_id}/assignments", operation_id="NodeAssignments", response_model=AssignmentList)
async def assignments(
    node_id: str,
    response: Response,
    known: str = Query("", description="The fingerprint (ETag) of the assignments the node has"),
    wait: float = Query(0, ge=0, le=MAX_WAIT_S, description="Seconds to hold the answer"),
    p: Platform = Depends(platform),
    relay: ExecRelay = Depends(exec_relay),
) -> AssignmentList:
    """The node's assignments and pending exec sessions, held up to `wait` seconds while they
    still match `known`."""
    deadline = time.monotonic() + wait
    signal = p.nodes.event(node_id)
    while True:
        signal.clear()  # before looking: a change made while looking wakes the wait below
        fingerprint = await run_in_threadpool(_fingerprint, p, node_id)
        fingerprint += relay.fingerprint(node_id)
        if fingerprint != known or time.monotonic() >= deadline:
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(signal.wait(), deadline - time.monotonic())
    response.headers["ETag"] = fingerprint
    listing = await run_in_threadpool(_assignments, p, node_id)
    listing.exec_sessions = relay.pending(node_id)
    return listing


@router.get("/{node_id}/archives/{archive_id}", operation_id="NodeArchive")
def archive(node_id: str, archive_id: str, p: Platform = Depends(platform)) -> Response:
    """An uploaded archive, for a build the node runs."""
    with p.db.read() as s:
        content = builds.archive_for(s, node_id, archive_id)
    return Response(content, media_type="application/gzip")


@router.post("/{node_id}/report", operation_id="NodeReport", response_model=Empty)
def report(node_id: str, batch: ReportBatch = Body(...), p: Platform = Depends(platform)) -> Empty:
    with p.db.session() as s:
        if s.get(Node, node_id) is None:
            raise NotFound("node")
        logs.append(s, node_id, batch.logs)  # first: a failed build's report quotes them
        services = {nodes.apply_report(s, node_id, r) for r in batch.instances}
        services |= {builds.apply(s, node_id, r) for r in batch.builds}
    p.metrics.add_resources(batch.resources, time.time())
    if batch.instances:
        p.nodes.notify([EDGE_SIGNAL])  # the edge's routes may have changed
    p.hint(sid for sid in services if sid)
    return Empty()
