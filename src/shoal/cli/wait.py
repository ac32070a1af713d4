"""`--wait`: poll a resource every 2 s until it settles, like Koyeb's CLI.

`verdict` is the decision (pure); `wait_until` polls and shows a spinner on stderr.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import Enum
from typing import Annotated, Any

import typer

from shoal.cli.output import note, stderr
from shoal.client import ApiError

POLL_SECONDS = 2.0
DEFAULT_TIMEOUT = 300.0
# Koyeb's rule: these end a wait as a failure.
FAILURE = frozenset({"ERROR", "DEGRADED", "UNHEALTHY", "CANCELED", "STOPPED", "ERRORING"})
GONE = None  # the status of a resource that no longer exists
# A deployment that scaled to zero has settled well too.
DEPLOYED: frozenset[str | None] = frozenset({"HEALTHY", "SLEEPING"})
PAUSED: frozenset[str | None] = frozenset({"PAUSED"})
DELETED: frozenset[str | None] = frozenset({GONE})

WaitFlag = Annotated[
    bool,
    typer.Option(
        "--wait", help="Wait until done; exit 3 if it ends in a failure status, 4 on timeout."
    ),
]
WaitTimeout = Annotated[
    float,
    typer.Option("--wait-timeout", min=0, metavar="SECONDS", help="How long --wait waits at most."),
]


class Verdict(Enum):
    DONE = "done"
    FAILED = "failed"
    WAITING = "waiting"


def verdict(status: str | None, success: frozenset[str | None]) -> Verdict:
    if status in success:
        return Verdict.DONE
    if status in FAILURE:
        return Verdict.FAILED
    return Verdict.WAITING


class WaitFailed(Exception):
    def __init__(self, what: str, status: str) -> None:
        super().__init__(f"{what} ended in status {status}")


class WaitTimedOut(Exception):
    def __init__(self, what: str, status: str | None, timeout: float) -> None:
        super().__init__(f"gave up waiting for {what} after {timeout:g} s (status {status})")


def _status(get: Callable[[], dict[str, Any]]) -> str | None:
    try:
        return str(get()["status"])
    except ApiError as e:
        if e.status == 404:
            return GONE
        raise


def wait_until(
    what: str, get: Callable[[], dict[str, Any]], success: frozenset[str | None], timeout: float
) -> None:
    """Poll `get` (a resource with a `status`; 404 means gone) until `success` or a failure."""
    deadline = time.monotonic() + timeout
    with stderr().status(f"Waiting for {what}") as spinner:
        while True:
            status = _status(get)
            spinner.update(f"Waiting for {what}: {status or 'deleted'}")
            decided = verdict(status, success)
            if decided is Verdict.DONE:
                break
            if decided is Verdict.FAILED and status is not None:
                raise WaitFailed(what, status)
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaitTimedOut(what, status, timeout)
            time.sleep(min(POLL_SECONDS, left))
    note(f"{what}: {status or 'deleted'}")
