"""Health-check timing and verdicts."""

from __future__ import annotations

from shoal.core.health import Policy, Probe, Verdict, next_probe_at, record, verdict

POLICY = Policy(grace_period=5, interval=30, timeout=5, restart_limit=3)


def test_quickly_at_start_then_every_second_then_at_the_interval():
    p = Probe(started_at=100.0)
    assert next_probe_at(POLICY, p) == 100.0
    gaps = []
    t = 100.0
    for _ in range(80):
        p = record(POLICY, p, False, "connection refused", t)
        gaps.append(round(next_probe_at(POLICY, p) - t, 4))
        t = next_probe_at(POLICY, p)
    assert gaps[:4] == [0.002, 0.0022, 0.0024, 0.0027]
    assert gaps == [round(min(1.0, 0.002 * 1.1**n), 4) for n in range(80)]
    assert gaps[-5:] == [1.0] * 5
    assert sum(gaps[:13]) < 0.05  # 13 checks in the first 50 ms
    p = record(POLICY, p, True, "", t)
    assert next_probe_at(POLICY, p) == t + 30


def test_failures_in_the_grace_period_do_not_count():
    p = Probe(started_at=0.0)
    for t in range(5):
        p = record(POLICY, p, False, "connection refused", float(t))
    assert p.failures == 0
    assert verdict(POLICY, [p]) == Verdict.STARTING
    for t in range(5, 8):
        p = record(POLICY, p, False, "connection refused", float(t))
    assert p.failures == 3
    assert verdict(POLICY, [p]) == Verdict.FAILED
    assert p.last_error == "connection refused"


def test_quick_start_up_checks_count_one_failure_a_second():
    quick = Policy(grace_period=0, interval=30, timeout=5, restart_limit=3)
    p = Probe(started_at=0.0)
    for n in range(100):  # a hundred failed checks in the first second
        p = record(quick, p, False, "connection refused", n / 100)
    assert p.failures == 1 and verdict(quick, [p]) == Verdict.STARTING
    p = record(quick, p, False, "connection refused", 1.0)
    p = record(quick, p, False, "connection refused", 1.5)
    assert p.failures == 2
    p = record(quick, p, False, "connection refused", 2.0)
    assert p.failures == 3 and verdict(quick, [p]) == Verdict.FAILED


def test_healthy_then_unhealthy_then_restart():
    p = record(POLICY, Probe(started_at=0.0), True, "", 1.0)
    assert verdict(POLICY, [p]) == Verdict.HEALTHY
    p = record(POLICY, p, False, "timeout", 31.0)
    assert verdict(POLICY, [p]) == Verdict.UNHEALTHY
    p = record(POLICY, p, True, "", 61.0)
    assert verdict(POLICY, [p]) == Verdict.HEALTHY
    for t in (91.0, 121.0, 151.0):
        p = record(POLICY, p, False, "timeout", t)
    assert verdict(POLICY, [p]) == Verdict.RESTART


def test_all_ports_must_pass():
    ok = record(POLICY, Probe(started_at=0.0), True, "", 1.0)
    starting = record(POLICY, Probe(started_at=0.0), False, "refused", 1.0)
    assert verdict(POLICY, [ok, starting]) == Verdict.STARTING
    assert verdict(POLICY, [ok, ok]) == Verdict.HEALTHY
    assert verdict(POLICY, []) == Verdict.HEALTHY
