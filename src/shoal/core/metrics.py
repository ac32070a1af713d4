"""Request metrics (pure): what the edge counts for each instance, second by second, and the
platform's memory of it, which the API and the autoscaler read.

The edge sends a `RequestSample` per instance and window: its responses by status class,
the time they spent in flight, and response-time quantiles. Concurrency is Little's law
over the window: the time requests spent in flight, divided by the window's length
(Knative's "average concurrency"). Response times are to the response's headers; quantiles
are nearest-rank over the requests timed in the window. A service's requests that no
instance could answer (503 from the edge) carry no instance.

`RequestMetrics` keeps each instance's samples for RETENTION_S and answers queries over
them; time always comes in as a parameter. It is shared by the API's event loop, which adds
samples, and the autoscaler's thread, which reads them: a lock keeps each call whole.

An instance sends up to two samples a second (requests, and its use of CPU and memory): kept
as the models they arrive as, an hour of them took 10 MB an instance. So they are kept as
rows of numbers (`_Rows`), the last FINE_S as they came (the autoscaler's windows, the last
minutes' graphs at any step) and older ones merged into one a minute (COARSE_S) — as a
metrics store downsamples — about 100 KB an hour of a busy instance.
"""

from __future__ import annotations

import math
import threading
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, Field, field_validator

RETENTION_S = 3600.0
QUANTILES = (0.5, 0.9, 0.99)
CODE_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx", "other")  # responses by status class
FINE_S = 300.0  # samples kept as they came
COARSE_S = 60.0  # older ones, merged into one a minute
K = TypeVar("K")


class RequestSample(BaseModel):
    service_id: str
    instance_id: str | None = None  # None: answered by the edge (no instance could)
    at: float  # end of the window, Unix seconds
    seconds: float = Field(gt=0)  # the window's length
    requests: int = Field(ge=0)
    codes: dict[str, int] = {}  # "2xx" -> how many
    busy_ms: float = Field(0, ge=0)  # the time its requests spent in flight, summed
    response_ms: list[float] = []  # p50, p90, p99, max of the window (empty: none timed)
    open: int = Field(0, ge=0)  # requests in flight at the window's end (a WebSocket, say)

    @field_validator("codes")
    @classmethod
    def _classes(cls, codes: dict[str, int]) -> dict[str, int]:
        if unknown := set(codes) - set(CODE_CLASSES):
            raise ValueError(f"unknown status classes {sorted(unknown)}: {', '.join(CODE_CLASSES)}")
        if any(n < 0 for n in codes.values()):
            raise ValueError("counts cannot be negative")
        return codes

    @field_validator("response_ms")
    @classmethod
    def _four(cls, times: list[float]) -> list[float]:
        if len(times) not in (0, len(QUANTILES) + 1):
            raise ValueError("p50, p90, p99 and max, or none")
        return times

    @property
    def active(self) -> bool:
        """Whether the instance had anything to do: a request, or one still open."""
        return bool(self.requests or self.open)

    @property
    def concurrent(self) -> float:
        return self.busy_ms / 1000 / self.seconds

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


class ResourceSample(BaseModel):
    """One instance's use of its instance type, as its node sampled it."""

    service_id: str
    instance_id: str
    at: float  # Unix seconds
    cpu_percent: float = Field(ge=0)  # of the instance type's vCPU, since the last sample
    memory_bytes: int = Field(ge=0)
    memory_limit_bytes: int = Field(ge=0)

    @property
    def memory_percent(self) -> float:
        return 100 * self.memory_bytes / self.memory_limit_bytes if self.memory_limit_bytes else 0


def quantile(ordered: list[float], q: float) -> float:
    """Nearest-rank quantile of an ascending list (not empty)."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def response_quantiles(times: list[float]) -> list[float]:
    """p50, p90, p99 and max of response times (empty: none)."""
    ordered = sorted(times)
    return [quantile(ordered, q) for q in QUANTILES] + [ordered[-1]] if ordered else []


@dataclass(frozen=True)
class Point:
    at: float
    value: float


class _Rows:
    """Samples, oldest first, each a row of `width` numbers (its time first) in one array of
    doubles."""

    __slots__ = ("head", "values", "width")

    def __init__(self, width: int) -> None:
        self.width, self.values, self.head = width, array("d"), 0  # head: the first kept row

    def __len__(self) -> int:
        return len(self.values) // self.width - self.head

    def append(self, row: Iterable[float]) -> None:
        self.values.extend(row)

    def last(self) -> int | None:
        """Where the newest row starts in `values` (None: no row)."""
        return len(self.values) - self.width if len(self) else None

    def drop_before(self, before: float) -> list[array[float]]:
        """Take off the oldest rows taken before `before`; they are returned. (Their space is
        given back once it is half of the array.)"""
        width, values = self.width, self.values
        count, first = len(values) // width, self.head
        while self.head < count and values[self.head * width] < before:
            self.head += 1
        dropped = [values[n * width : (n + 1) * width] for n in range(first, self.head)]
        if self.head * 2 >= count:
            del values[: self.head * width]
            self.head = 0
        return dropped

    def between(self, start: float, end: float) -> Iterator[array[float]]:
        """The rows taken in (start, end]."""
        width, values = self.width, self.values
        for n in range(self.head, len(values) // width):
            if start < values[n * width] <= end:
                yield values[n * width : (n + 1) * width]


# Merges a newer row into one a minute (`values` at `base`) in place.
Merge = Callable[["array[float]", int, "array[float]"], None]


class _History:
    """One instance's samples: the last FINE_S as they came, older ones merged into one a
    minute, none older than RETENTION_S."""

    __slots__ = ("coarse", "fine", "merge")

    def __init__(self, width: int, merge: Merge) -> None:
        self.fine, self.coarse, self.merge = _Rows(width), _Rows(width), merge

    def append(self, row: Iterable[float]) -> None:
        self.fine.append(row)

    def age(self, now: float) -> bool:
        """Merge what is no longer recent, forget what is too old; whether any is left."""
        for row in self.fine.drop_before(now - FINE_S):
            base = self.coarse.last()
            values = self.coarse.values
            if base is not None and values[base] // COARSE_S == row[0] // COARSE_S:
                self.merge(values, base, row)
            else:
                self.coarse.append(row)
        self.coarse.drop_before(now - RETENTION_S)
        return bool(len(self.coarse) or len(self.fine))

    def between(self, start: float, end: float) -> Iterator[array[float]]:
        yield from self.coarse.between(start, end)
        yield from self.fine.between(start, end)


def _merge_requests(values: array[float], base: int, row: array[float]) -> None:
    """Two request samples as one over both windows: counts and times in flight added,
    in flight at the end the most of either (so that it stays active), response times
    weighted by requests as `series` does (the max the max; a sample's requests weigh even
    when none was timed, which only sampled logging leaves: an approximation of a minute)."""
    older, newer, timed = values[base + 2], row[2], _TIMES
    if math.isnan(values[base + timed]):
        values[base + timed : base + timed + 4] = row[timed : timed + 4]
    elif not math.isnan(row[timed]) and older + newer:
        for k in range(3):
            mixed = values[base + timed + k] * older + row[timed + k] * newer
            values[base + timed + k] = mixed / (older + newer)
        values[base + timed + 3] = max(values[base + timed + 3], row[timed + 3])
    values[base] = max(values[base], row[0])  # (a late sample does not move it back)
    for k in (1, 2, 3, *range(5, timed)):  # the window, requests, time in flight, codes
        values[base + k] += row[k]
    values[base + 4] = max(values[base + 4], row[4])


def _merge_resources(values: array[float], base: int, row: array[float]) -> None:
    """Two resource samples as their mean (the count of samples merged in the last column)."""
    n = values[base + 4]
    values[base] = max(values[base], row[0])  # (a late sample does not move it back)
    for k in (1, 2):
        values[base + k] = (values[base + k] * n + row[k]) / (n + 1)
    values[base + 3] = row[3]
    values[base + 4] = n + 1


def _request_row(s: RequestSample) -> list[float]:
    times = s.response_ms or [math.nan] * (len(QUANTILES) + 1)
    codes = [float(s.codes.get(c, 0)) for c in CODE_CLASSES]
    return [s.at, s.seconds, s.requests, s.busy_ms, s.open, *codes, *times]


def _request(service_id: str, instance_id: str | None, row: array[float]) -> RequestSample:
    at, seconds, requests, busy_ms, in_flight = row[:5]
    codes = {c: int(n) for c, n in zip(CODE_CLASSES, row[5:_TIMES], strict=True) if n}
    times = [] if math.isnan(row[_TIMES]) else list(row[_TIMES:])
    return RequestSample.model_construct(  # (validated when it came in)
        service_id=service_id,
        instance_id=instance_id,
        at=at,
        seconds=seconds,
        requests=int(requests),
        codes=codes,
        busy_ms=busy_ms,
        response_ms=times,
        open=int(in_flight),
    )


# A request sample's row: at, seconds, requests, busy_ms, open, its codes (CODE_CLASSES), then
# its response times (from _TIMES: p50, p90, p99, max; NaN when none were timed).
_TIMES = 5 + len(CODE_CLASSES)
_REQUEST_WIDTH = _TIMES + len(QUANTILES) + 1


class RequestMetrics:
    """Every instance's recent samples (RETENTION_S), and counters since the start."""

    def __init__(self) -> None:
        self._samples: dict[tuple[str, str | None], _History] = {}
        self._codes: dict[tuple[str, str | None], dict[str, int]] = {}
        self._used: dict[tuple[str, str], _History] = {}
        self._lock = threading.Lock()

    def add_resources(self, samples: Iterable[ResourceSample], now: float) -> None:
        with self._lock:
            for s in samples:
                row = (s.at, s.cpu_percent, s.memory_bytes, s.memory_limit_bytes, 1)
                key = (s.service_id, s.instance_id)
                self._used.setdefault(key, _History(5, _merge_resources)).append(row)
            _age(self._used, now)

    def resources(
        self, service_id: str, start: float, end: float, instance_id: str | None = None
    ) -> dict[str, list[ResourceSample]]:
        """Instance id -> its resource samples taken in (start, end]."""
        out = {}
        with self._lock:
            for (svc, inst), kept in self._used.items():
                if svc == service_id and (instance_id is None or inst == instance_id):
                    found = [
                        ResourceSample.model_construct(
                            service_id=svc,
                            instance_id=inst,
                            at=at,
                            cpu_percent=cpu,
                            memory_bytes=int(memory),
                            memory_limit_bytes=int(limit),
                        )
                        for at, cpu, memory, limit, _ in kept.between(start, end)
                    ]
                    if found:
                        out[inst] = found
        return out

    def add(self, samples: Iterable[RequestSample], now: float) -> None:
        with self._lock:
            for s in samples:
                key = (s.service_id, s.instance_id)
                history = self._samples.setdefault(key, _History(_REQUEST_WIDTH, _merge_requests))
                history.append(_request_row(s))
                codes = self._codes.setdefault(key, defaultdict(int))
                for code, n in s.codes.items():
                    codes[code] += n
            _age(self._samples, now)

    def forget(self, service_ids: set[str]) -> None:
        """Drop deleted services."""
        with self._lock:
            for store in (self._samples, self._codes):
                for key in [k for k in store if k[0] in service_ids]:
                    del store[key]
            for used in [k for k in self._used if k[0] in service_ids]:
                del self._used[used]

    def samples(
        self, service_id: str, start: float, end: float, instance_id: str | None = None
    ) -> dict[str | None, list[RequestSample]]:
        """Instance id -> its samples whose window ended in (start, end]: of one instance, or
        of all of a service's."""
        out = {}
        with self._lock:
            for (svc, inst), kept in self._samples.items():
                if svc == service_id and (instance_id is None or inst == instance_id):
                    out[inst] = [_request(svc, inst, row) for row in kept.between(start, end)]
        return {inst: found for inst, found in out.items() if found}

    def services(self) -> set[str]:
        """The services anything is held for."""
        with self._lock:
            return {svc for svc, _ in (*self._codes, *self._samples, *self._used)}

    def totals(self, service_ids: set[str]) -> dict[tuple[str, str | None], dict[str, int]]:
        """(service, instance) -> requests by status class since the platform started."""
        with self._lock:
            return {k: dict(v) for k, v in self._codes.items() if k[0] in service_ids}


def _age(kept: dict[K, _History], now: float) -> None:
    for key, history in list(kept.items()):
        if not history.age(now):
            del kept[key]


def series(
    samples: list[RequestSample], name: str, start: float, end: float, step: float
) -> list[Point]:
    """One metric over [start, end] in steps: each point is over the samples of its step.
    THROUGHPUT is requests per second; response times are in ms, a step's quantile being
    the request-weighted mean of its seconds' quantiles (and MAX their max); a step with no
    request has no response time point."""
    points = []
    buckets = max(1, math.ceil((end - start) / step))
    for n in range(buckets):
        lo, hi = start + n * step, min(start + (n + 1) * step, end)
        inside = [s for s in samples if lo < s.at <= hi]
        value = _value(inside, name, hi - lo)
        if value is not None:
            points.append(Point(hi, value))
    return points


def resource_series(
    samples: list[ResourceSample], name: str, start: float, end: float, step: float
) -> list[Point]:
    """CPU_TOTAL_PERCENT (percent of the vCPU) or MEM_RSS (bytes) over [start, end] in steps:
    the mean of each step's samples (a step with none has no point)."""
    points = []
    for n in range(max(1, math.ceil((end - start) / step))):
        lo, hi = start + n * step, min(start + (n + 1) * step, end)
        inside = [s for s in samples if lo < s.at <= hi]
        if inside:
            values = [
                s.cpu_percent if name == "CPU_TOTAL_PERCENT" else s.memory_bytes for s in inside
            ]
            points.append(Point(hi, sum(values) / len(values)))
    return points


RESPONSE_TIMES = {
    "HTTP_RESPONSE_TIME_50P": 0,
    "HTTP_RESPONSE_TIME_90P": 1,
    "HTTP_RESPONSE_TIME_99P": 2,
    "HTTP_RESPONSE_TIME_MAX": 3,
}


def _value(inside: list[RequestSample], name: str, seconds: float) -> float | None:
    if name == "HTTP_THROUGHPUT":
        return sum(s.requests for s in inside) / seconds if seconds > 0 else 0.0
    index = RESPONSE_TIMES[name]
    if name == "HTTP_RESPONSE_TIME_MAX":
        return max((s.response_ms[index] for s in inside if s.response_ms), default=None)
    return weighted_response_ms(inside, index)


def weighted_response_ms(samples: list[RequestSample], index: int) -> float | None:
    """The request-weighted mean of the samples' `response_ms[index]` (None: none timed)."""
    timed = [s for s in samples if s.response_ms]
    weight = sum(s.requests for s in timed)
    if not weight:
        return None
    return sum(s.response_ms[index] * s.requests for s in timed) / weight
