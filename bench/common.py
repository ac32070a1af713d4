"""What benchmarks share: how busy the machine was before the run, and what that means; and
cleaning up a platform's apps at the end."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

QUIET = 0.10  # busier than this, other work skews the numbers


def _jiffies() -> tuple[int, int]:
    """(all, idle) CPU time since boot, from /proc/stat's first line."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(f), f[3] + f[4]


@dataclass(frozen=True)
class Machine:
    cpus: int
    busy: float  # fraction of all CPUs busy in the sampled second
    load: float  # 1-minute load average

    @classmethod
    def sample(cls, seconds: float = 1.0) -> Machine:
        total0, idle0 = _jiffies()
        time.sleep(seconds)
        total1, idle1 = _jiffies()
        busy = 1 - (idle1 - idle0) / max(1, total1 - total0)
        return cls(os.cpu_count() or 1, busy, os.getloadavg()[0])

    @property
    def quiet(self) -> bool:
        return self.busy <= QUIET

    def describe(self) -> str:
        """The line to print before the run, with a warning when it was not quiet."""
        text = (
            f"machine: {self.cpus} CPUs, {self.busy:.0%} busy in the second before the run, "
            f"load average {self.load:.2f}"
        )
        if not self.quiet:
            text += "\n  WARNING: other work is using the CPUs; every number below is skewed by it"
        return text

    def caveat(self) -> str:
        """The line to print after the results ("" on a quiet machine)."""
        if self.quiet:
            return ""
        return (
            f"(the CPUs were {self.busy:.0%} busy with other work before the run: rerun on a "
            "quiet machine before quoting these numbers)"
        )


def delete_apps(api: httpx.Client, *app_ids: str) -> None:
    """Delete apps and wait (up to a minute) until the platform has none left: their
    instances stopped, before the platform stops (they would outlive it)."""
    for app_id in app_ids:
        api.delete(f"/v1/apps/{app_id}")
    deadline = time.monotonic() + 60
    while api.get("/v1/apps").json()["count"] and time.monotonic() < deadline:
        time.sleep(0.1)
