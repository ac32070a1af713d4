"""How many instances one region of a service should run: a pure decision from the load the
edge observed, the instances ready, the time and the last decision (stored, so that a
restarted control plane carries on where it was).

Knative's KPA, made quicker to react:

- The stable window (STABLE_S, 60 s) averages the load; its desired count is the total load
  over the target per instance, for each target set (the largest wins). Load that stops
  lowers that average second by second, so the count comes down step by step, never up and
  down again.
- The panic window (PANIC_S, 6 s) catches bursts: when its desired count reaches
  PANIC_RATIO (200 %) of the instances ready, the service panics: it scales up to that
  count at once and does not scale down until a stable window has passed without a burst.
  To see a step of load within a second or two rather than once the 6 s have filled, the
  panic window's load is the larger of its own average and that of its last BURST_S.

Targets: `concurrent_requests` and `requests_per_second` are per instance; for
`requests_response_time` (a quantile in ms), `average_cpu` and `average_mem` (percent of
the instance type's vCPU and memory), the count grows in proportion to how far the
observed value is over the target (Kubernetes' HPA rule).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shoal.core.definition import DefinitionType, DeploymentDefinition
from shoal.core.regional import regional_definition

STABLE_S = 60.0
PANIC_S = 6.0
BURST_S = 2.0
PANIC_RATIO = 2.0
SLEEP_S = 300.0  # idle before a `min: 0` region sleeps lightly, unless its target says
FREE_SLEEP_S = 120.0  # the same for the seed's free instances
DEEP_SLEEP_S = 1800.0  # idle before a light sleep turns deep, unless its target says


@dataclass(frozen=True)
class Targets:
    concurrent_requests: float | None = None
    requests_per_second: float | None = None
    response_time_ms: float | None = None
    response_quantile: int = 95
    average_cpu: float | None = None  # percent
    average_mem: float | None = None  # percent

    @classmethod
    def of(cls, targets: list[dict[str, Any]]) -> Targets:
        """From a regional scaling's `targets` (zero or absent: not set)."""
        found: dict[str, Any] = {}
        for t in targets:
            for name in (
                "concurrent_requests",
                "requests_per_second",
                "average_cpu",
                "average_mem",
            ):
                if (t.get(name) or {}).get("value"):
                    found[name] = float(t[name]["value"])
            rt = t.get("requests_response_time") or {}
            if rt.get("value"):
                found["response_time_ms"] = float(rt["value"])
                found["response_quantile"] = int(rt.get("quantile") or 95)
        return cls(**found)

    @property
    def any(self) -> bool:
        return any(
            v is not None
            for v in (
                self.concurrent_requests,
                self.requests_per_second,
                self.response_time_ms,
                self.average_cpu,
                self.average_mem,
            )
        )


@dataclass(frozen=True)
class Scaling:
    """One region's scaling: `min` (0: it sleeps when idle: lightly after `light_after`
    seconds without a request, deeply after `deep_after`), `max`, and the targets."""

    low: int
    high: int
    targets: Targets = Targets()
    light_after: float | None = None
    deep_after: float | None = None

    @classmethod
    def of(cls, scaling: dict[str, Any] | None, instance_type: str | None = None) -> Scaling:
        """From a regional definition's `scaling` and instance type (no scaling: one
        instance). The idle delays are the targets' `sleep_idle_delay` (`value` is the
        deprecated name of the deep one; 0 is unset); with neither, light after SLEEP_S
        (FREE_SLEEP_S for the free type) and deep after DEEP_SLEEP_S. A deep delay not
        after the light one leaves only the deep sleep."""
        if not scaling:
            return cls(1, 1)
        low = int(scaling.get("min") or 0)
        targets = scaling.get("targets") or []
        light = deep = None
        if low == 0:
            for t in targets:
                delay = t.get("sleep_idle_delay") or {}
                light = float(delay.get("light_sleep_value") or 0) or light
                deep = float(delay.get("deep_sleep_value") or delay.get("value") or 0) or deep
            if light is None and deep is None:
                light = FREE_SLEEP_S if instance_type == "free" else SLEEP_S
            if deep is None:
                deep = max(DEEP_SLEEP_S, light or 0)
            if light is not None and light >= deep:
                light = None
        return cls(low, int(scaling.get("max") or 0), Targets.of(targets), light, deep)

    @property
    def sleep_after(self) -> float | None:
        """The idle time after which it first sleeps (None: it never does)."""
        return self.light_after if self.light_after is not None else self.deep_after

    @property
    def floor(self) -> int:
        return max(self.low, 1)

    @property
    def ceiling(self) -> int:
        return max(self.high, self.floor)

    @property
    def automatic(self) -> bool:
        """Whether the load decides the count (otherwise it is the floor)."""
        return self.ceiling > self.floor and self.targets.any

    def bound(self, replicas: int) -> int:
        return min(max(replicas, self.floor), self.ceiling)

    @property
    def sleeps(self) -> bool:
        return self.sleep_after is not None

    def count(self, stored: int | None) -> int:
        """How many instances run, given the stored decision (None: none yet)."""
        if stored == 0 and self.sleeps:
            return 0
        if stored is not None and self.automatic:
            return self.bound(stored)
        return self.floor


def scalings(definition: DeploymentDefinition) -> dict[str, Scaling]:
    """A deployment's scaling in each of its regions (a worker never sleeps: it gets no
    request that could wake it)."""
    out = {}
    for region in definition.regions or []:
        view = regional_definition(definition, region)
        scaling = Scaling.of(view.get("scaling"), view.get("instance_type"))
        if definition.type == DefinitionType.WORKER:
            scaling = dataclasses.replace(scaling, light_after=None, deep_after=None)
        out[region] = scaling
    return out


@dataclass(frozen=True)
class Second:
    """The region's load in one second, all its instances together."""

    at: float  # the second's end
    requests: int
    busy_s: float  # the time its requests spent in flight
    response_ms: float | None = None  # the targeted quantile (None: no timed request)


@dataclass(frozen=True)
class Utilisation:
    """One instance's use of its instance type at one moment."""

    at: float
    cpu_percent: float
    memory_percent: float


@dataclass(frozen=True)
class Scale:
    """The last decision: what was wanted, since when, and the last burst seen."""

    replicas: int
    changed_at: float = 0.0
    panic_at: float | None = None
    light: bool = False  # asleep (0) with its instances frozen, not stopped


@dataclass(frozen=True)
class Decision:
    replicas: int
    panic_at: float | None
    reason: str  # why the count or the sleep changed ("" when neither did)
    light: bool = False  # asleep lightly: its instances are frozen, not stopped


def decide(
    scaling: Scaling,
    load: list[Second],
    ready: int,
    last: Scale,
    now: float,
    stable_s: float = STABLE_S,
    used: Sequence[Utilisation] = (),
    active_at: float = 0.0,
) -> Decision:
    """The count for one region, within the scaling's floor and ceiling; 0 (asleep) once a
    region that sleeps has had nothing to do since `active_at` (its last request, or open
    connection, or wake) for its idle delay: lightly first when it has a light delay, then
    deeply. Only a request wakes it (it is not decided here: the edge asks the control
    plane)."""
    floor, ceiling, targets = scaling.floor, scaling.ceiling, scaling.targets
    light, deep = scaling.light_after, scaling.deep_after
    if last.replicas == 0 and scaling.sleeps:
        if last.light:
            # It fell asleep once idle for `light`: deep is due `deep - light` later.
            idle = now - last.changed_at + (light or 0.0)
            if light is None or (deep is not None and idle >= deep):
                return Decision(0, None, f"no request for {idle:.0f} s: deep sleep")
        return Decision(0, None, "", light=last.light)
    if scaling.sleeps:
        idle = now - max(active_at, last.changed_at)
        if deep is not None and idle >= deep:
            return Decision(0, None, f"no request for {idle:.0f} s: deep sleep")
        if light is not None and idle >= light:
            return Decision(0, None, f"no request for {idle:.0f} s: light sleep", light=True)
    if not scaling.automatic:
        return Decision(floor, None, _why(last.replicas, floor, "static scaling"))
    stable, why_stable = _desired(targets, load, used, now, stable_s, ready)
    burst, why_burst = max(
        _desired(targets, load, used, now, PANIC_S, ready),
        _desired(targets, load, used, now, BURST_S, ready),
    )
    panic_at = last.panic_at
    if burst >= PANIC_RATIO * max(ready, 1) and burst > last.replicas:
        panic_at = now
    if panic_at is not None and now - panic_at >= stable_s:
        panic_at = None
    if panic_at is not None:  # never down in a panic
        wanted, why = max(burst, last.replicas), f"burst: {why_burst}"
    else:
        wanted, why = stable, why_stable
    replicas = scaling.bound(wanted)
    if replicas == last.replicas:
        return Decision(replicas, panic_at, "")
    if wanted > ceiling:
        why += f"; held at max {ceiling}"
    elif wanted < floor:
        why += f"; held at min {floor}"
    return Decision(replicas, panic_at, why)


def _desired(
    targets: Targets,
    load: list[Second],
    used: Sequence[Utilisation],
    now: float,
    window: float,
    ready: int,
) -> tuple[int, str]:
    """The count the load of the last `window` seconds asks for, and why."""
    inside = [s for s in load if now - window < s.at <= now]
    using = [u for u in used if now - window < u.at <= now]
    count = max(ready, 1)
    options = [(0, "no load")]
    if targets.concurrent_requests:
        busy = sum(s.busy_s for s in inside) / window
        options.append(
            _per_instance("concurrent requests", busy, targets.concurrent_requests, ready)
        )
    if targets.requests_per_second:
        rate = sum(s.requests for s in inside) / window
        options.append(
            _per_instance("requests per second", rate, targets.requests_per_second, ready)
        )
    timed = [s for s in inside if s.response_ms is not None and s.requests]
    if targets.response_time_ms and timed:
        weight = sum(s.requests for s in timed)
        ms = sum((s.response_ms or 0) * s.requests for s in timed) / weight
        needed = math.ceil(count * ms / targets.response_time_ms - 1e-9)
        word = ">" if ms > targets.response_time_ms else "<="
        name = f"p{targets.response_quantile} response time"
        options.append(
            (needed, f"{name} {ms:.0f} ms {word} target {targets.response_time_ms:g} ms")
        )
    for name, target, values in (
        ("CPU", targets.average_cpu, [u.cpu_percent for u in using]),
        ("memory", targets.average_mem, [u.memory_percent for u in using]),
    ):
        if target and values:
            mean = sum(values) / len(values)
            word = ">" if mean > target else "<="
            needed = math.ceil(count * mean / target - 1e-9)
            options.append((needed, f"average {name} {mean:.0f}% {word} target {target:g}%"))
    return max(options, key=lambda o: o[0])


def _per_instance(name: str, observed: float, target: float, ready: int) -> tuple[int, str]:
    """E.g. "concurrent requests 48.0 > target 20 x 2 instances"."""
    needed = math.ceil(observed / target - 1e-9)
    word = ">" if observed > target * ready else "<="
    plural = "instance" if ready == 1 else "instances"
    return needed, f"{name} {observed:.1f} {word} target {target:g} x {ready} {plural}"


def _why(before: int, after: int, reason: str) -> str:
    return reason if before != after else ""
