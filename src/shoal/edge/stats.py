"""HAProxy's counters (`show stat`), read into what each server and backend answered in a
window (pure).

Counters start again at zero when a server is added or HAProxy reloads: a counter lower
than before counts from zero.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass

from shoal.core.metrics import CODE_CLASSES as CLASSES  # what HAProxy counts: hrsp_<class>

BACKEND = "BACKEND"  # the svname of a backend's own row


@dataclass(frozen=True)
class Counters:
    codes: dict[str, int]  # responses by status class, since the server was made
    ttime_ms: float  # the average time in flight of its last 1024 requests
    current: int  # requests in flight now


def parse(stat: str) -> dict[tuple[str, str], Counters]:
    """(backend, server) -> its counters, and (backend, BACKEND) for each backend's whole."""
    rows = csv.DictReader(stat.lstrip("# ").splitlines())
    out = {}
    for row in rows:
        if row.get("svname") == "FRONTEND" or not row.get("pxname"):
            continue
        out[row["pxname"], row["svname"]] = Counters(
            codes={c: int(row.get(f"hrsp_{c}") or 0) for c in CLASSES},
            ttime_ms=float(row.get("ttime") or 0),
            current=int(row.get("scur") or 0),
        )
    return out


@dataclass(frozen=True)
class Answered:
    codes: dict[str, int]  # responses by status class in the window
    busy_ms: float  # their time in flight (their count times the recent average)
    open: int = 0  # requests in flight at the end of the window

    @property
    def requests(self) -> int:
        return sum(self.codes.values())


def window(
    before: dict[tuple[str, str], Counters], after: dict[tuple[str, str], Counters]
) -> dict[tuple[str, str | None], Answered]:
    """(backend, server) -> what it answered between the two readings and what it still
    serves, and (backend, None) -> what the backend answered itself (503: no server could);
    only servers with something to show."""
    out: dict[tuple[str, str | None], Answered] = {}
    served: dict[str, dict[str, int]] = {}
    for (backend, server), now in after.items():
        codes = _since(before.get((backend, server)), now)
        if server == BACKEND:
            continue
        total = served.setdefault(backend, dict.fromkeys(CLASSES, 0))
        for c, n in codes.items():
            total[c] += n
        if any(codes.values()) or now.current:
            busy = sum(codes.values()) * now.ttime_ms
            out[backend, server] = Answered(_nonzero(codes), busy, now.current)
    for (backend, server), now in after.items():
        if server != BACKEND:
            continue
        codes = _since(before.get((backend, server)), now)
        by_servers = served.get(backend, {})
        own = {c: max(0, n - by_servers.get(c, 0)) for c, n in codes.items()}
        if any(own.values()):
            out[backend, None] = Answered(_nonzero(own), 0.0)
    return out


def _since(before: Counters | None, now: Counters) -> dict[str, int]:
    if before is None or any(now.codes[c] < before.codes[c] for c in CLASSES):
        return dict(now.codes)  # new, or counting again from zero
    return {c: now.codes[c] - before.codes[c] for c in CLASSES}


def _nonzero(codes: dict[str, int]) -> dict[str, int]:
    return {c: n for c, n in codes.items() if n}
