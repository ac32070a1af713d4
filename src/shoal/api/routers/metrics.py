"""Request metrics: `/v1/streams/metrics` (Koyeb's GetMetrics: one series per instance) and
`/metrics`, the same in Prometheus' text format, for the token's organization.

Both read the metrics the edge sends (core/metrics.py), which the API process that takes
writes holds: HAProxy sends both paths there (edge/haproxy_config.py).
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Literal

from fastapi import APIRouter, Depends, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from shoal.api.deps import Platform, QueryOf, platform, principal
from shoal.api.schemas.common import ERROR_RESPONSES, UtcTime
from shoal.core.errors import FieldError, InvalidArgument
from shoal.core.metrics import (
    QUANTILES,
    RESPONSE_TIMES,
    RequestMetrics,
    resource_series,
    series,
    weighted_response_ms,
)
from shoal.store.query import find
from shoal.store.tables import App, Instance, Service
from shoal.store.tenancy import Principal

router = APIRouter(tags=["Metrics"], responses=ERROR_RESPONSES)
RESOURCES = ("CPU_TOTAL_PERCENT", "MEM_RSS")
COLLECTED = ("HTTP_THROUGHPUT", *RESPONSE_TIMES, *RESOURCES)
MAX_POINTS = 10_000
RECENT_S = 60.0  # what /metrics' gauges are over
_STEP = re.compile(r"^([1-9][0-9]{0,5})([smh])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600}

MetricName = Literal[
    "UNKNOWN",
    "CPU_TOTAL_PERCENT",
    "MEM_RSS",
    "HTTP_THROUGHPUT",
    "HTTP_RESPONSE_TIME_50P",
    "HTTP_RESPONSE_TIME_90P",
    "HTTP_RESPONSE_TIME_99P",
    "HTTP_RESPONSE_TIME_MAX",
    "PUBLIC_DATA_TRANSFER_IN",
    "PUBLIC_DATA_TRANSFER_OUT",
]


class MetricsQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    service_id: str | None = Field(None, description="Ignored if instance_id is set")
    instance_id: str | None = None
    name: MetricName = "UNKNOWN"
    start: UtcTime | None = Field(None, description="Default: an hour before end")
    end: UtcTime | None = Field(None, description="Default: now")
    step: str = Field("5m", description="A duration in seconds (s), minutes (m) or hours (h)")

    @field_validator("step")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not _STEP.match(value):
            raise ValueError("must be a duration such as 30s, 5m or 1h")
        return value

    @property
    def step_s(self) -> float:
        m = _STEP.match(self.step)
        assert m is not None  # validated
        return int(m.group(1)) * _UNIT_S[m.group(2)]


class MetricSample(BaseModel):
    timestamp: datetime
    value: float


class MetricSeries(BaseModel):
    labels: dict[str, str]
    samples: list[MetricSample]


class GetMetricsReply(BaseModel):
    metrics: list[MetricSeries]


def _service_of(p: Platform, who: Principal, q: MetricsQuery) -> str:
    """The service whose metrics are asked for (404 when not the organization's)."""
    with p.db.read() as s:
        if q.instance_id:
            return find(s, Instance, who.organization_id, q.instance_id, "instance").service_id
        if q.service_id:
            return find(s, Service, who.organization_id, q.service_id, "service").id
    raise InvalidArgument(
        "service_id or instance_id is required",
        [FieldError("service_id", "service_id or instance_id is required")],
    )


@router.get("/v1/streams/metrics", operation_id="GetMetrics", response_model=GetMetricsReply)
async def get_metrics(
    q: MetricsQuery = Depends(QueryOf(MetricsQuery)),
    who: Principal = Depends(principal),
    p: Platform = Depends(platform),
) -> GetMetricsReply:
    """Metrics of a service's instances (one series each) or of one instance: requests per
    second, response times in milliseconds, CPU in percent of the instance type's vCPU,
    memory in bytes."""
    if q.name not in COLLECTED:
        why = f"shoal collects {', '.join(COLLECTED)}"
        raise InvalidArgument(f"metric {q.name} is not collected", [FieldError("name", why)])
    service_id = await run_in_threadpool(_service_of, p, who, q)
    end = q.end or datetime.now(UTC)
    start = q.start or end - timedelta(hours=1)
    span = (end - start).total_seconds()
    if span <= 0:
        raise InvalidArgument("start must be before end", [FieldError("start", "after end")])
    if span / q.step_s > MAX_POINTS:
        why = f"more than {MAX_POINTS} points: take a longer step or a shorter range"
        raise InvalidArgument(why, [FieldError("step", why)])
    lo, hi = start.timestamp(), end.timestamp()
    if q.name in RESOURCES:
        used = p.metrics.resources(service_id, lo, hi, q.instance_id)
        found = {i: resource_series(xs, q.name, lo, hi, q.step_s) for i, xs in used.items()}
    else:
        requests = p.metrics.samples(service_id, lo, hi, q.instance_id)
        found = {  # (requests no instance answered have no instance)
            i: series(xs, q.name, lo, hi, q.step_s) for i, xs in requests.items() if i
        }
    out = []
    for instance_id, points in sorted(found.items()):
        out.append(
            MetricSeries(
                labels={"service_id": service_id, "instance_id": instance_id},
                samples=[
                    MetricSample(timestamp=datetime.fromtimestamp(pt.at, UTC), value=pt.value)
                    for pt in points
                ],
            )
        )
    return GetMetricsReply(metrics=out)


class _Snapshot(Collector):
    """The organization's request metrics at one moment, as Prometheus metric families."""

    def __init__(self, metrics: RequestMetrics, services: dict[str, tuple[str, str]]) -> None:
        self._metrics, self._services = metrics, services

    def collect(self) -> list[Metric]:
        names = ["service_id", "service", "app", "instance_id"]
        total = CounterMetricFamily(
            "shoal_http_requests",
            "Requests the edge proxied, by status class, since the platform started",
            labels=[*names, "code"],
        )
        for (svc, inst), codes in sorted(
            self._metrics.totals(set(self._services)).items(), key=str
        ):
            for code, n in sorted(codes.items()):
                total.add_metric([svc, *self._services[svc], inst or "", code], n)
        rate = GaugeMetricFamily(
            "shoal_http_requests_per_second", f"Over the last {RECENT_S:g} s", labels=names
        )
        busy = GaugeMetricFamily(
            "shoal_http_concurrent_requests",
            f"Average requests in flight over the last {RECENT_S:g} s",
            labels=names,
        )
        times = GaugeMetricFamily(
            "shoal_http_response_time_seconds",
            f"Time to the response's headers over the last {RECENT_S:g} s (request-weighted "
            "mean of each second's quantile)",
            labels=[*names, "quantile"],
        )
        now = time.time()
        for svc, (service, app) in sorted(self._services.items()):
            found = self._metrics.samples(svc, now - RECENT_S, now)
            for inst, samples in sorted(found.items(), key=lambda kv: kv[0] or ""):
                labels = [svc, service, app, inst or ""]
                rate.add_metric(labels, sum(s.requests for s in samples) / RECENT_S)
                busy.add_metric(labels, sum(s.busy_ms for s in samples) / 1000 / RECENT_S)
                for n, q in enumerate(QUANTILES):
                    ms = weighted_response_ms(samples, n)
                    if ms is not None:
                        times.add_metric([*labels, f"{q:g}"], ms / 1000)
        return [total, rate, busy, times]


def _services(p: Platform, who: Principal) -> dict[str, tuple[str, str]]:
    with p.db.read() as s:
        rows = s.execute(
            select(Service.id, Service.name, App.name)
            .join(App, App.id == Service.app_id)
            .where(Service.organization_id == who.organization_id)
        )
        return {svc_id: (name, app) for svc_id, name, app in rows}


@router.get("/metrics", include_in_schema=False)
async def prometheus(
    who: Principal = Depends(principal), p: Platform = Depends(platform)
) -> Response:
    """Prometheus' text format (scrape with the organization's token as a bearer token)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(p.metrics, await run_in_threadpool(_services, p, who)))
    return Response(
        generate_latest(registry), media_type="text/plain; version=0.0.4; charset=utf-8"
    )
