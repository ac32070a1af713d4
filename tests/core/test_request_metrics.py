"""Request metrics (pure): the edge's tallies, the platform's memory of them, and series."""

from __future__ import annotations

import threading

import pytest
from pydantic import ValidationError

from shoal.core.metrics import (
    FINE_S,
    RETENTION_S,
    RequestMetrics,
    RequestSample,
    ResourceSample,
    _Rows,
    quantile,
    resource_series,
    response_quantiles,
    series,
)


def test_quantiles_are_nearest_rank():
    ordered = [float(n) for n in range(1, 101)]
    assert [quantile(ordered, q) for q in (0.5, 0.9, 0.99, 1.0)] == [50, 90, 99, 100]
    assert quantile([7.0], 0.99) == 7


def test_response_quantiles():
    assert response_quantiles([float(n) for n in range(100, 0, -1)]) == [50, 90, 99, 100]
    assert response_quantiles([]) == []


def test_a_sample_gives_rate_and_concurrency():
    s = RequestSample(service_id="svc", at=10, seconds=2, requests=100, busy_ms=5000)
    assert (s.rate, s.concurrent) == (50, 2.5)  # Little's law: 5 s in flight over 2 s


def sample(at: float, requests: int, p50: float, inst: str | None = "i1", svc: str = "svc"):
    return RequestSample(
        service_id=svc,
        instance_id=inst,
        at=at,
        seconds=1,
        requests=requests,
        codes={"2xx": requests},
        busy_ms=requests * p50,
        response_ms=[p50, p50 * 2, p50 * 3, p50 * 4] if requests else [],
    )


def test_the_platform_keeps_an_hour_and_counts_since_the_start():
    m = RequestMetrics()
    m.add([sample(100, 10, 5), sample(100, 4, 9, inst="i2"), sample(100, 3, 0, inst=None)], 100)
    m.add([sample(101, 20, 7), sample(101, 1, 1, svc="other")], 101)
    found = m.samples("svc", 0, 200)
    assert sorted(found, key=str) == [None, "i1", "i2"]
    assert [s.requests for s in found["i1"]] == [10, 20]
    assert list(m.samples("svc", 100, 200, "i1")) == ["i1"]
    assert m.samples("svc", 100.5, 200, "i1")["i1"][0].at == 101
    assert m.samples("svc", 200, 300) == {}
    # An hour later the samples are gone, the counters stay.
    m.add([sample(101 + RETENTION_S + 1, 1, 1)], 101 + RETENTION_S + 1)
    assert [s.requests for s in m.samples("svc", 0, 10_000)["i1"]] == [1]
    assert m.totals({"svc"}) == {
        ("svc", "i1"): {"2xx": 31},
        ("svc", "i2"): {"2xx": 4},
        ("svc", None): {"2xx": 3},
    }
    m.forget({"svc"})
    assert m.totals({"svc"}) == {} and m.samples("svc", 0, 10_000) == {}
    assert m.totals({"other"}) == {("other", "i1"): {"2xx": 1}}


def test_series_in_steps():
    samples = [sample(101, 10, 5), sample(102, 30, 10), sample(111, 5, 2)]
    assert [(p.at, p.value) for p in series(samples, "HTTP_THROUGHPUT", 100, 120, 10)] == [
        (110, 4.0),
        (120, 0.5),
    ]
    p50 = series(samples, "HTTP_RESPONSE_TIME_50P", 100, 120, 10)
    assert [p.value for p in p50] == [(10 * 5 + 30 * 10) / 40, 2]  # weighted by requests
    assert [p.value for p in series(samples, "HTTP_RESPONSE_TIME_MAX", 100, 120, 10)] == [40, 8]
    # No request in a step: throughput 0, no response time.
    assert [p.value for p in series(samples, "HTTP_THROUGHPUT", 120, 130, 5)] == [0, 0]
    assert series(samples, "HTTP_RESPONSE_TIME_99P", 120, 130, 5) == []


def test_resource_samples_are_kept_an_hour_and_averaged_per_step():
    def used(at: float, cpu: float, mem: int, inst: str = "i1") -> ResourceSample:
        return ResourceSample(service_id="svc", instance_id=inst, at=at, cpu_percent=cpu,
                              memory_bytes=mem, memory_limit_bytes=1000)  # fmt: skip

    m = RequestMetrics()
    m.add_resources([used(101, 50, 200), used(102, 70, 400), used(101, 10, 100, "i2")], 102)
    found = m.resources("svc", 100, 200)
    assert sorted(found) == ["i1", "i2"] and found["i1"][1].memory_percent == 40
    assert list(m.resources("svc", 100, 200, "i2")) == ["i2"]
    cpu = resource_series(found["i1"], "CPU_TOTAL_PERCENT", 100, 110, 10)
    assert [(p.at, p.value) for p in cpu] == [(110, 60)]
    assert [p.value for p in resource_series(found["i1"], "MEM_RSS", 100, 110, 10)] == [300]
    assert m.services() == {"svc"}
    m.add_resources([], 102 + RETENTION_S + 1)
    assert m.resources("svc", 0, 10_000) == {}
    m.add_resources([used(5000, 1, 1)], 5000)
    m.forget({"svc"})
    assert m.services() == set()


def test_samples_added_while_another_thread_reads_them():
    """The API adds samples on its event loop while the autoscaler reads them in a thread
    (the reads once failed: "dictionary changed size during iteration")."""
    metrics = RequestMetrics()
    done = threading.Event()
    failures: list[BaseException] = []

    def read() -> None:
        try:
            while not done.is_set():
                metrics.resources("svc", 0, 1e9)
                metrics.samples("svc", 0, 1e9)
                metrics.services()
        except RuntimeError as e:
            failures.append(e)

    reader = threading.Thread(target=read)
    reader.start()
    for n in range(1_500):
        used = ResourceSample(
            service_id="svc",
            instance_id=f"i{n}",
            at=n,
            cpu_percent=1,
            memory_bytes=1,
            memory_limit_bytes=2,
        )
        metrics.add_resources([used], now=n)
        served = RequestSample(service_id="svc", instance_id=f"i{n}", at=n, seconds=1, requests=1)
        metrics.add([served], now=n)
        if failures:
            break
    done.set()
    reader.join()
    assert not failures


def test_samples_come_back_as_they_went_in():
    m = RequestMetrics()
    sent = [
        RequestSample(service_id="svc", instance_id="i1", at=10.5, seconds=0.5, requests=7,
                      codes={"2xx": 5, "5xx": 2}, busy_ms=12.25, response_ms=[1, 2, 3, 4], open=3),
        RequestSample(service_id="svc", instance_id="i1", at=11, seconds=1, requests=0, open=1),
    ]  # fmt: skip
    m.add(sent, 11)
    assert m.samples("svc", 0, 20)["i1"] == sent
    used = ResourceSample(service_id="svc", instance_id="i1", at=10, cpu_percent=37.5,
                          memory_bytes=123_456_789, memory_limit_bytes=2**28)  # fmt: skip
    m.add_resources([used], 10)
    assert m.resources("svc", 0, 20) == {"i1": [used]}


def test_a_sample_names_known_status_classes_and_four_response_times():
    for bad in ({"codes": {"2xx": 1, "teapot": 1}}, {"codes": {"2xx": -1}},
                {"response_ms": [1.0, 2.0]}):  # fmt: skip
        with pytest.raises(ValidationError):
            RequestSample(service_id="svc", at=1, seconds=1, requests=1, **bad)


def test_dropped_rows_give_their_memory_back():
    rows = _Rows(2)
    for t in range(10_000):
        rows.append((t, t * 2))
        rows.drop_before(t - 100)  # a hundred kept
    assert len(rows.values) <= 2 * 2 * 101  # at most twice what is kept
    assert [at for at, _ in rows.between(0, 9_998)] == list(range(9_899, 9_999))  # (start, end]
    assert [list(r) for r in rows.drop_before(9_901)] == [[9_899, 19_798], [9_900, 19_800]]
    rows.drop_before(10_000)
    assert len(rows) == 0 and rows.last() is None


def test_older_samples_are_kept_one_a_minute():
    m = RequestMetrics()
    t0 = 60_000.0  # a minute's start
    m.add([sample(t0 + 1, 10, 5), sample(t0 + 2, 30, 10), sample(t0 + 61, 5, 2)], t0 + 61)
    m.add_resources(
        [ResourceSample(service_id="svc", instance_id="i1", at=t0 + n, cpu_percent=10.0 * n,
                        memory_bytes=100 * n, memory_limit_bytes=1000) for n in (1, 2, 3)],
        t0 + 3,
    )  # fmt: skip
    recent = m.samples("svc", 0, 10**6)["i1"]
    assert [s.requests for s in recent] == [10, 30, 5]  # as they came, while recent
    later = t0 + 61 + FINE_S + 1
    m.add([sample(later, 1, 1)], later)
    m.add_resources([], later)
    merged, minute2, newest = m.samples("svc", 0, 10**6)["i1"]
    assert (merged.at, merged.seconds, merged.requests, merged.codes) == (
        t0 + 2, 2, 40, {"2xx": 40}  # the last sample's time: when it last had something to do
    )  # fmt: skip
    assert merged.response_ms == [(10 * 5 + 30 * 10) / 40, (10 * 10 + 30 * 20) / 40,
                                  (10 * 15 + 30 * 30) / 40, 40]  # fmt: skip
    assert merged.concurrent == (10 * 5 + 30 * 10) / 1000 / 2
    assert (minute2.requests, newest.requests) == (5, 1)
    (used,) = m.resources("svc", 0, 10**6)["i1"]
    assert (used.at, used.cpu_percent, used.memory_bytes) == (t0 + 3, 20.0, 200)
    # An hour on, only the newest is left; then nothing, and the instance is forgotten.
    m.add([], later + RETENTION_S - 1)
    assert [s.requests for s in m.samples("svc", 0, 10**6)["i1"]] == [1]
    m.add([], later + RETENTION_S + 1)
    assert m.samples("svc", 0, 10**6) == {}
    assert m.services() == {"svc"}  # (its counters since the start stay)
