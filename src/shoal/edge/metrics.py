"""The edge's request metrics: every METRICS_S, what each instance answered — counts by
status class and time in flight from HAProxy's counters (stats.py), response times from the
requests it logs (request_log.py) — goes to the control plane, one sample per instance."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from shoal.client.errors import ApiError, ApiUnreachable
from shoal.client.node import NodeClient
from shoal.core.edge import EdgeTable
from shoal.core.metrics import RequestSample, response_quantiles
from shoal.edge import stats
from shoal.edge.request_log import RequestLog
from shoal.edge.runtime_api import RuntimeApi

log = logging.getLogger(__name__)
METRICS_S = 1.0


async def report_requests(
    api: RuntimeApi, client: NodeClient, requests: RequestLog, table: Callable[[], EdgeTable]
) -> None:
    """Send each window's samples (a window the control plane cannot take is lost); `table`:
    the routes HAProxy runs now."""
    last, pid = time.monotonic(), None
    counted: dict[tuple[str, str], stats.Counters] = {}
    while True:
        await asyncio.sleep(METRICS_S)
        try:
            now_pid = await api.pid()
            now_counted = stats.parse(await api.command("show stat -1 6 -1"))
        except OSError as e:  # HAProxy (re)starting: count from its next counters
            log.info("request metrics: %s", e)
            counted = {}
            continue
        if now_pid != pid:  # a new worker counts from zero
            counted = {}
        answered = stats.window(counted, now_counted)
        counted, pid = now_counted, now_pid
        now = time.monotonic()
        found = samples(table(), answered, requests.take(), time.time(), now - last)
        last = now
        if not found:
            continue
        try:
            await client.edge_metrics(found)
        except (ApiUnreachable, ApiError) as e:
            log.warning("request metrics: %s", e)


def samples(
    table: EdgeTable,
    answered: dict[tuple[str, str | None], stats.Answered],
    times: dict[tuple[str, str], list[float]],
    at: float,
    seconds: float,
) -> list[RequestSample]:
    """The samples of one window, for the backends of the table's routes (requests to no app
    are nobody's)."""
    services = {r.backend(region): r.service_id for r in table.routes for region in r.pools()}
    return [
        RequestSample(
            service_id=services[backend],
            instance_id=server,
            at=at,
            seconds=seconds,
            requests=a.requests,
            codes=a.codes,
            busy_ms=a.busy_ms,
            response_ms=response_quantiles(times.get((backend, server or ""), [])),
            open=a.open,
        )
        for (backend, server), a in answered.items()
        if backend in services
    ]
