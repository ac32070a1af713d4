"""The `--wait` decision (pure) and how a poll ends."""

from __future__ import annotations

import pytest

from shoal.cli.wait import (
    DELETED,
    DEPLOYED,
    PAUSED,
    Verdict,
    WaitFailed,
    WaitTimedOut,
    verdict,
    wait_until,
)
from shoal.client import ApiError


@pytest.mark.parametrize(
    "status", ["ERROR", "DEGRADED", "UNHEALTHY", "CANCELED", "STOPPED", "ERRORING"]
)
def test_koyebs_failure_statuses_fail_every_wait(status):
    for success in (DEPLOYED, PAUSED, DELETED):
        assert verdict(status, success) is Verdict.FAILED


@pytest.mark.parametrize(
    "status",
    [
        "PENDING",
        "PROVISIONING",
        "SCHEDULED",
        "ALLOCATING",
        "STARTING",
        "STOPPING",
        "PAUSING",
        "RESUMING",
        "DELETING",
    ],
)
def test_statuses_on_the_way_keep_waiting(status):
    assert verdict(status, DEPLOYED) is Verdict.WAITING


def test_what_counts_as_done():
    assert verdict("HEALTHY", DEPLOYED) is Verdict.DONE
    assert verdict("SLEEPING", DEPLOYED) is Verdict.DONE
    assert verdict("PAUSED", PAUSED) is Verdict.DONE
    assert verdict(None, DELETED) is Verdict.DONE
    assert verdict("HEALTHY", PAUSED) is Verdict.WAITING


def test_wait_until_ends_on_success_failure_and_deadline():
    wait_until("thing", lambda: {"status": "HEALTHY"}, DEPLOYED, timeout=0)
    with pytest.raises(WaitFailed, match="ERROR"):
        wait_until("thing", lambda: {"status": "ERROR"}, DEPLOYED, timeout=0)
    with pytest.raises(WaitTimedOut, match="PENDING"):
        wait_until("thing", lambda: {"status": "PENDING"}, DEPLOYED, timeout=0)


def test_a_404_means_gone():
    def gone() -> dict:
        raise ApiError(404, "not_found", "service not found")

    wait_until("thing", gone, DELETED, timeout=0)
    with pytest.raises(WaitTimedOut):
        wait_until("thing", gone, DEPLOYED, timeout=0)


def test_other_api_errors_propagate():
    def refused() -> dict:
        raise ApiError(401, "authentication_error", "bad token")

    with pytest.raises(ApiError):
        wait_until("thing", refused, DEPLOYED, timeout=0)
