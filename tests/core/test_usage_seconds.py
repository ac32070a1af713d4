"""Usage (pure), on a controlled clock: seconds within a window per month, app, service,
region and instance type, and their cost at the seed's per-second prices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from shoal.core.usage import Lifetime, cost, details, months, usage

T0 = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)  # an hour before December


def life(inst: str, start: timedelta, end: timedelta | None, **kw: str) -> Lifetime:
    base = {
        "organization_id": "org",
        "app_id": "a1",
        "app_name": "shop",
        "service_id": "s1",
        "service_name": "web",
        "region": "fra",
        "deployment_id": "d1",
        "regional_deployment_id": "rd1",
        "instance_type": "nano",
    }
    return Lifetime(inst, **{**base, **kw}, started_at=T0 + start,  # type: ignore[arg-type]
                    terminated_at=T0 + end if end is not None else None)  # fmt: skip


def test_seconds_are_the_overlap_of_each_run_with_the_window():
    now = T0 + timedelta(hours=3)
    one = life("i1", timedelta(minutes=30), timedelta(minutes=90))
    running = life("i2", timedelta(hours=2), None)
    window = (T0, T0 + timedelta(hours=4))
    assert one.seconds(*window, now) == 3600
    assert running.seconds(*window, now) == 3600  # until now
    assert one.seconds(T0 + timedelta(hours=1), T0 + timedelta(hours=4), now) == 1800
    assert one.seconds(T0 + timedelta(hours=2), T0 + timedelta(hours=4), now) == 0


def test_light_sleep_is_not_counted():
    now = T0 + timedelta(hours=3)
    run = life("i1", timedelta(0), None)
    slept = Lifetime(
        **{**run.__dict__, "asleep": (
            (T0 + timedelta(minutes=10), T0 + timedelta(minutes=40)),  # 30 min
            (T0 + timedelta(hours=2, minutes=30), None),  # still asleep: 30 min until now
        )}
    )  # fmt: skip
    window = (T0, T0 + timedelta(hours=4))
    assert run.seconds(*window, now) == 3 * 3600
    assert slept.seconds(*window, now) == 2 * 3600
    # A window cutting a sleep counts only the sleep inside it.
    assert slept.seconds(T0 + timedelta(minutes=30), T0 + timedelta(hours=1), now) == 20 * 60
    # Two records of the same sleep (two reports of it at once) take it off once.
    twice = Lifetime(**{**slept.__dict__, "asleep": (*slept.asleep, slept.asleep[0])})
    assert twice.seconds(*window, now) == 2 * 3600


def test_months_split_a_window():
    assert [k for k, _, _ in months(T0, T0 + timedelta(days=40))] == [
        "2026-11",
        "2026-12",
        "2027-01",
    ]
    [(_, lo, hi)] = months(T0, T0 + timedelta(minutes=10))
    assert (lo, hi) == (T0, T0 + timedelta(minutes=10))
    last = datetime(9999, 12, 1, tzinfo=UTC)
    assert months(last, last + timedelta(days=30)) == [("9999-12", last, last + timedelta(days=30))]


def test_usage_by_month_app_service_region_and_type_and_its_cost():
    now = T0 + timedelta(hours=2)
    lives = [
        life("i1", timedelta(minutes=30), timedelta(minutes=90)),  # 30 min in Nov, 30 in Dec
        life("i2", timedelta(0), None, region="was", instance_type="small"),  # 1 h + 1 h
        life("i3", timedelta(0), timedelta(minutes=10), service_id="s2", service_name="db"),
    ]
    got = usage("org", lives, T0, T0 + timedelta(days=1), now)
    nov, dec = got["periods"]["2026-11"], got["periods"]["2026-12"]
    [app] = nov["apps"]
    by_service = {s["service_name"]: s["regions"] for s in app["services"]}
    assert by_service["web"] == {
        "fra": {"instances": {"nano": {"duration_seconds": 1800}}},
        "was": {"instances": {"small": {"duration_seconds": 3600}}},
    }
    assert by_service["db"] == {"fra": {"instances": {"nano": {"duration_seconds": 600}}}}
    [web] = dec["apps"][0]["services"]
    assert web["regions"]["fra"]["instances"]["nano"]["duration_seconds"] == 1800
    rows = details(lives, T0, T0 + timedelta(days=1), now)
    assert sorted((r["instance_id"], r["duration_seconds"]) for r in rows) == [
        ("i1", 3600),
        ("i2", 7200),
        ("i3", 600),
    ]
    # The seed's prices: nano $0.000001/s, small $0.000004/s.
    assert cost(3600, "nano") == Decimal("0.0036")
    assert cost(7200, "small") == 7200 * Decimal("0.000004")
    assert cost(10, "nope") == 0
