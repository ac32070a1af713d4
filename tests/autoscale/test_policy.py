"""The autoscaling decision (pure): a step of load, a burst, the way down, the bounds."""

from __future__ import annotations

from typing import Any

from shoal.autoscale.policy import (
    DEEP_SLEEP_S,
    FREE_SLEEP_S,
    SLEEP_S,
    STABLE_S,
    Decision,
    Scale,
    Scaling,
    Second,
    Targets,
    Utilisation,
    decide,
    scalings,
)
from shoal.core.definition import DeploymentDefinition

CONCURRENCY_2 = Targets(concurrent_requests=2)


def steady(start: int, end: int, concurrent: float, rate: int = 0) -> list[Second]:
    """A constant load over the seconds ending in (start, end]."""
    return [Second(float(t), rate, concurrent) for t in range(start + 1, end + 1)]


def run(load: list[Second], start: int, end: int, high: int, ready_lag: int = 3) -> list[int]:
    """Decide every second from start to end; instances become ready `ready_lag` s after
    being asked for. The counts decided, second by second."""
    last, counts, asked = Scale(1), [], [(0, 1)]
    for now in range(start, end + 1):
        ready = max(n for t, n in asked if t <= now - ready_lag) if now >= ready_lag else 1
        d = decide(Scaling(1, high, CONCURRENCY_2), load, ready, last, float(now))
        if d.replicas != last.replicas:
            asked.append((now, d.replicas))
            assert d.reason
        last = Scale(d.replicas, float(now) if d.reason else last.changed_at, d.panic_at)
        counts.append(d.replicas)
    return counts


def changes(counts: list[int]) -> list[int]:
    return [c for n, c in enumerate(counts) if n == 0 or counts[n - 1] != c]


def test_a_step_of_load_scales_up_within_seconds_and_down_after_it_stops_without_flapping():
    load = steady(100, 200, 8)  # 8 requests in flight for 100 s, target 2 per instance
    counts = run(load, 90, 400, high=10)
    assert counts[:11] == [1] * 11  # idle
    assert counts[11:13] == [2, 4]  # more from the first second of load, all by the second
    assert max(counts) == 4
    assert changes(counts) == [1, 2, 4, 3, 2, 1]  # up, then only down
    assert counts[200 - 90] == 4  # held while the load lasts
    assert counts[-1] == 1


def test_never_more_than_max_and_never_less_than_one():
    counts = run(steady(100, 200, 100), 90, 250, high=3)
    assert max(counts) == 3 and min(counts) == 1
    d = decide(Scaling(1, 3, CONCURRENCY_2), steady(0, 60, 100), 3, Scale(1), 60)
    assert d.replicas == 3 and "held at max 3" in d.reason
    assert (
        decide(Scaling(0, 3, CONCURRENCY_2), [], 1, Scale(1), 60).replicas == 1
    )  # sleep: not here


def test_a_burst_panics_and_nothing_comes_down_during_the_panic():
    # A steady 2 in flight (1 instance), then a burst of 20 for 3 s.
    load = steady(0, 100, 2) + steady(100, 103, 20)
    d = decide(Scaling(1, 20, CONCURRENCY_2), load, 1, Scale(1), 101)
    assert d.replicas == 6 and d.panic_at == 101  # (2 + 20) / 2 s / 2 per instance
    assert d.reason.startswith("burst: concurrent requests 11.0 > target 2 x 1 instance")
    later = decide(Scaling(1, 20, CONCURRENCY_2), load, 6, Scale(6, 101, 101), 110)
    assert later.replicas == 6 and later.panic_at == 101  # the burst is over: still 6
    after = decide(Scaling(1, 20, CONCURRENCY_2), load, 6, Scale(6, 101, 101), 101 + STABLE_S)
    assert after.panic_at is None and after.replicas < 6


def test_a_restarted_control_plane_carries_on_from_the_stored_decision():
    """The last burst is stored with the count: after a restart mid-panic the count holds,
    as it would have without the restart."""
    load = steady(0, 22, 8)  # a burst that ended at t=22
    scaling = Scaling(1, 5, CONCURRENCY_2)
    stored = Scale(4, 20.0, panic_at=21.0)
    assert decide(scaling, load, 4, stored, 30).replicas == 4
    forgotten = Scale(4, 20.0, panic_at=None)
    assert decide(scaling, load, 4, forgotten, 30).replicas < 4


def test_requests_per_second_and_response_time_targets():
    load = [Second(float(t), 100, 0.5, response_ms=400) for t in range(1, 61)]
    rps = decide(Scaling(1, 10, Targets(requests_per_second=30)), load, 2, Scale(2), 60)
    assert rps.replicas == 4 and "requests per second 100.0 > target 30 x 2" in rps.reason
    slow = decide(
        Scaling(1, 10, Targets(response_time_ms=200, response_quantile=95)), load, 2, Scale(2), 60
    )
    assert slow.replicas == 4 and "p95 response time 400 ms > target 200 ms" in slow.reason
    both = Targets(requests_per_second=50, response_time_ms=300)
    assert (
        decide(Scaling(1, 10, both), load, 2, Scale(2), 60).replicas == 3
    )  # the larger of 2 and 3


def test_static_scalings_and_targets_from_the_definition():
    assert decide(Scaling(2, 2, CONCURRENCY_2), steady(0, 60, 50), 2, Scale(2), 60) == Decision(
        2, None, ""
    )
    assert decide(Scaling(1, 5, Targets()), steady(0, 60, 50), 1, Scale(1), 60).replicas == 1
    targets = Targets.of(
        [
            {"concurrent_requests": {"value": 20}},
            {"requests_per_second": {"value": 0}},  # 0: disabled
            {"requests_response_time": {"value": 300, "quantile": 99}},
            {"average_mem": {"value": 0}},
        ]
    )
    assert targets == Targets(concurrent_requests=20, response_time_ms=300, response_quantile=99)
    assert Targets.of([{"average_cpu": {"value": 80}}]) == Targets(average_cpu=80)
    assert not Targets.of([{"average_mem": {"value": 0}}]).any


def test_cpu_and_memory_targets_scale_in_proportion():
    used = [Utilisation(float(t), 90, 30) for t in range(1, 61)]  # two instances at 90 % CPU
    cpu = decide(Scaling(1, 10, Targets(average_cpu=45)), [], 2, Scale(2), 60, used=used)
    assert cpu.replicas == 4 and "average CPU 90% > target 45%" in cpu.reason
    mem = decide(Scaling(1, 10, Targets(average_mem=60)), [], 2, Scale(2), 60, used=used)
    assert mem.replicas == 1 and "average memory 30% <= target 60%" in mem.reason


def test_scalings_from_regional_definitions():
    auto = Scaling.of({"min": 0, "max": 4, "targets": [{"concurrent_requests": {"value": 5}}]})
    assert (auto.floor, auto.ceiling, auto.automatic) == (1, 4, True)
    assert (auto.bound(9), auto.bound(0)) == (4, 1)
    same = {"min": 2, "max": 2, "targets": [{"concurrent_requests": {"value": 5}}]}
    assert not Scaling.of(same).automatic  # min = max: targets are dropped
    assert not Scaling.of({"min": 1, "max": 3}).automatic  # no target: the min
    assert Scaling.of(None).floor == 1


def test_a_min_0_region_sleeps_after_its_idle_delay_and_stays_asleep():
    naps = Scaling.of({"min": 0, "max": 2, "targets": [{"sleep_idle_delay": {"value": 30}}]})
    assert (naps.sleeps, naps.sleep_after, naps.floor) == (True, 30, 1)
    assert not Scaling.of({"min": 1, "max": 1}).sleeps
    last = Scale(1, changed_at=0)
    # The last request 20 s ago: awake. 31 s ago: asleep.
    assert decide(naps, [], 1, last, 100, active_at=80).replicas == 1
    d = decide(naps, [], 1, last, 100, active_at=69)
    assert d == Decision(0, None, "no request for 31 s: deep sleep", light=False)
    # Woken 10 s ago (the count set again, changed_at then): awake, whatever the requests.
    assert decide(naps, [], 1, Scale(1, changed_at=90), 100, active_at=0).replicas == 1
    # Asleep: only a request wakes it, through the API.
    assert decide(naps, steady(0, 100, 50), 0, Scale(0, 50), 100, active_at=99) == Decision(
        0, None, ""
    )


def test_light_sleep_first_then_deep():
    both = {"light_sleep_value": 10, "deep_sleep_value": 60}
    naps = Scaling.of({"min": 0, "max": 2, "targets": [{"sleep_idle_delay": both}]})
    assert (naps.light_after, naps.deep_after, naps.sleep_after) == (10, 60, 10)
    awake = Scale(1, changed_at=0)
    assert decide(naps, [], 1, awake, 100, active_at=95).replicas == 1
    light = decide(naps, [], 1, awake, 100, active_at=89)
    assert light == Decision(0, None, "no request for 11 s: light sleep", light=True)
    # Asleep lightly since t=100 (idle 11 s then): deep once idle 60 s, at t=149.
    lightly = Scale(0, changed_at=100, light=True)
    assert decide(naps, [], 0, lightly, 148) == Decision(0, None, "", light=True)
    assert decide(naps, [], 0, lightly, 150) == Decision(0, None, "no request for 60 s: deep sleep")
    # Idle past both delays at once (a control plane that was down): straight to deep.
    assert decide(naps, [], 1, awake, 100, active_at=30).reason == "no request for 70 s: deep sleep"
    # Asleep deeply: stays so until a request.
    assert decide(naps, [], 0, Scale(0, changed_at=100), 10_000) == Decision(0, None, "")
    # A new definition without a light sleep turns a light one deep.
    deep_only = Scaling.of({"min": 0, "max": 1, "targets": [{"sleep_idle_delay": {"value": 9}}]})
    assert decide(deep_only, [], 0, lightly, 101).reason == "no request for 1 s: deep sleep"


def test_sleep_delays_and_their_defaults():
    def delays(delay: dict[str, int] | None, itype: str | None = None) -> tuple[Any, Any]:
        targets = [{"sleep_idle_delay": delay}] if delay is not None else []
        s = Scaling.of({"min": 0, "max": 1, "targets": targets}, itype)
        return s.light_after, s.deep_after

    assert delays(None) == (SLEEP_S, DEEP_SLEEP_S)  # light at Koyeb's idle period, then deep
    assert delays(None, "free") == (FREE_SLEEP_S, DEEP_SLEEP_S)  # the seed's two minutes
    assert delays({"value": 30}) == (None, 30)  # the deprecated name of the deep delay
    assert delays({"deep_sleep_value": 30}) == (None, 30)
    assert delays({"light_sleep_value": 30}) == (30, DEEP_SLEEP_S)
    assert delays({"light_sleep_value": 5000}) == (None, 5000)  # light past the deep default
    assert delays({"light_sleep_value": 60, "deep_sleep_value": 60}) == (None, 60)
    assert delays({"light_sleep_value": 0, "deep_sleep_value": 0}) == (SLEEP_S, DEEP_SLEEP_S)
    assert Scaling.of({"min": 1, "max": 1, "targets": [{"sleep_idle_delay": {"value": 9}}]}) == (
        Scaling(1, 1)
    )  # min 1: never sleeps


def test_workers_never_sleep():
    def definition(kind: str) -> DeploymentDefinition:
        return DeploymentDefinition.model_validate(
            {"type": kind, "regions": ["fra"], "scalings": [{"min": 0, "max": 1}]}
        )

    assert scalings(definition("WEB"))["fra"].sleeps
    worker = scalings(definition("WORKER"))["fra"]
    assert not worker.sleeps and worker.count(0) == 1
