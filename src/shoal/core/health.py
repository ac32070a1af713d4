"""Health-check decisions for one instance (pure): when to probe next and what the results mean.

Koyeb's rules: checks run every second during start-up and at the configured interval once the
instance has been healthy (shoal starts faster: the first start-up checks come 2 ms apart,
each gap a tenth longer than the last up to the second, so that an app ready in 50 ms is
healthy within about 7 ms of it, not in 1 s, for a few dozen checks in its first second; a
failed start-up check still counts once a second at most, as Koyeb's would); failures inside
the grace period do not count; `restart_limit` failures in a row fail an instance that never
became healthy (its deployment fails), and restart one that was healthy (a new instance
replaces it). Every check of every port must pass for the instance to be healthy.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

STARTUP_INTERVAL_S = 1.0
FIRST_STARTUP_INTERVAL_S = 0.002
STARTUP_BACKOFF = 1.1


@dataclass(frozen=True)
class Policy:
    grace_period: float
    interval: float
    timeout: float
    restart_limit: int


@dataclass(frozen=True)
class Probe:
    """The state of one check (one port) of one instance."""

    started_at: float  # when the instance's process started
    failures: int = 0  # consecutive failures that count
    ever_passed: bool = False
    passing: bool = False
    last_error: str = ""
    last_at: float | None = None
    attempts: int = 0


class Verdict(StrEnum):
    STARTING = "STARTING"
    HEALTHY = "HEALTHY"
    UNHEALTHY = "UNHEALTHY"
    FAILED = "FAILED"  # never became healthy: the instance is in error
    RESTART = "RESTART"  # was healthy, failed too often: replace it


def next_probe_at(policy: Policy, probe: Probe) -> float:
    if probe.last_at is None:
        return probe.started_at
    if probe.ever_passed:
        return probe.last_at + policy.interval
    backoff: float = FIRST_STARTUP_INTERVAL_S * STARTUP_BACKOFF ** max(probe.attempts - 1, 0)
    return probe.last_at + min(STARTUP_INTERVAL_S, backoff)


def record(policy: Policy, probe: Probe, ok: bool, error: str, now: float) -> Probe:
    attempts = probe.attempts + 1
    if ok:
        return replace(
            probe,
            failures=0,
            ever_passed=True,
            passing=True,
            last_error="",
            last_at=now,
            attempts=attempts,
        )
    in_grace = now < probe.started_at + policy.grace_period and not probe.ever_passed
    # Before it ever passed, one failure a second counts (the quick checks are for speed).
    due = probe.started_at + policy.grace_period + probe.failures * STARTUP_INTERVAL_S
    counts = not in_grace and (probe.ever_passed or now >= due)
    failures = probe.failures + 1 if counts else probe.failures
    return replace(
        probe, failures=failures, passing=False, last_error=error, last_at=now, attempts=attempts
    )


def verdict(policy: Policy, probes: list[Probe]) -> Verdict:
    """One instance's verdict from all its checks."""
    if not probes:
        return Verdict.HEALTHY
    if any(p.failures >= policy.restart_limit for p in probes):
        return Verdict.RESTART if all(p.ever_passed for p in probes) else Verdict.FAILED
    if all(p.passing for p in probes):
        return Verdict.HEALTHY
    if all(p.ever_passed for p in probes):
        return Verdict.UNHEALTHY
    return Verdict.STARTING
