"""/internal/v1/edge: the route table the edge keeps its data plane in step with, and the
request metrics it sends back.

shoal's own protocol, for the platform's edge (with the agent token), left out of
/openapi.json. The table is a long poll: the answer is held while the table still matches
the `known` fingerprint (its ETag), looked at again at once when a node reports, and at
least every POLL_S.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from shoal.api.deps import EDGE_SIGNAL, Platform, node_agent, platform
from shoal.api.routers.nodes import MAX_WAIT_S
from shoal.core.edge import EdgeTable
from shoal.core.metrics import RequestSample
from shoal.store import edge

router = APIRouter(
    prefix="/internal/v1/edge", dependencies=[Depends(node_agent)], include_in_schema=False
)
POLL_S = 0.5  # a look at the table at least this often (changes not reported by a node)
MAX_SAMPLES = 100_000  # of one window: an instance each


def _table(p: Platform) -> EdgeTable:
    with p.db.read() as s:
        return edge.table(s, p.base_domain)


@router.get("/routes", operation_id="EdgeRoutes", response_model=EdgeTable)
async def routes(
    request: Request,
    response: Response,
    known: str = Query("", description="The fingerprint (ETag) of the table the edge has"),
    wait: float = Query(0, ge=0, le=MAX_WAIT_S, description="Seconds to hold the answer"),
    p: Platform = Depends(platform),
) -> EdgeTable:
    deadline = time.monotonic() + wait
    signal = p.nodes.event(EDGE_SIGNAL)
    while True:
        signal.clear()  # before looking: a report made while looking wakes the wait below
        table = await run_in_threadpool(_table, p)
        fingerprint = table.fingerprint()
        left = deadline - time.monotonic()
        if fingerprint != known or left <= 0 or await request.is_disconnected():
            break  # (an edge gone, and one stopping the API, wait for nothing)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(signal.wait(), min(POLL_S, left))
    response.headers["ETag"] = fingerprint
    return table


@router.post("/metrics", operation_id="EdgeMetrics", status_code=204)
async def metrics(
    samples: list[RequestSample] = Body(..., max_length=MAX_SAMPLES),
    p: Platform = Depends(platform),
) -> Response:
    p.metrics.add(samples, time.time())
    return Response(status_code=204)


class WakeRequest(BaseModel):
    service_id: str


class WakeReply(BaseModel):
    asleep: bool  # asleep (now waking) or waking: a request may wait for an instance


def _wake(p: Platform, service_id: str) -> bool:
    with p.db.session() as s:
        return edge.wake(s, service_id)


@router.post("/wake", operation_id="EdgeWake", response_model=WakeReply)
async def wake(body: WakeRequest = Body(...), p: Platform = Depends(platform)) -> WakeReply:
    """A request came for a service with no instance to take it: wake the service if it
    sleeps."""
    asleep = await run_in_threadpool(_wake, p, body.service_id)
    if asleep:
        p.hint([body.service_id])
    return WakeReply(asleep=asleep)
