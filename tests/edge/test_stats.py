"""HAProxy's counters read into what each server answered in a window (pure)."""

from __future__ import annotations

from shoal.core.edge import EdgeRoute, EdgeTable
from shoal.edge.metrics import samples
from shoal.edge.stats import Answered, parse, window

HEAD = "# pxname,svname,scur,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,ttime,\n"


def stat(*rows: tuple[str, str, int, int, int, float]) -> str:
    """(backend, server, in flight, 2xx, 5xx, average ms) rows in `show stat`'s CSV."""
    return HEAD + "".join(
        f"{b},{s},{cur},0,{ok},0,0,{bad},0,{ms},\n" for b, s, cur, ok, bad, ms in rows
    )


def test_counters_are_read_by_backend_and_server():
    found = parse(stat(("edge", "FRONTEND", 0, 9, 0, 0), ("r-a", "i1", 2, 7, 1, 4.5)))
    assert list(found) == [("r-a", "i1")]
    assert found["r-a", "i1"].codes["2xx"] == 7 and found["r-a", "i1"].current == 2
    assert found["r-a", "i1"].ttime_ms == 4.5


def test_a_window_is_the_difference_and_the_backends_own_answers_are_its_503s():
    before = parse(stat(("r-a", "i1", 0, 10, 0, 4), ("r-a", "BACKEND", 0, 10, 0, 4)))
    after = parse(
        stat(
            ("r-a", "i1", 1, 30, 1, 5),  # 20 more 2xx, a 5xx of the instance
            ("r-a", "i2", 0, 5, 0, 2),  # added since: all of it counts
            ("r-a", "i3", 0, 0, 0, 0),  # nothing answered, nothing open: left out
            ("r-a", "i4", 2, 0, 0, 0),  # two WebSockets open, say
            ("r-a", "BACKEND", 1, 35, 4, 5),  # and 3 503s no server answered
        )
    )
    assert window(before, after) == {
        ("r-a", "i1"): Answered({"2xx": 20, "5xx": 1}, 21 * 5.0, open=1),
        ("r-a", "i2"): Answered({"2xx": 5}, 10.0),
        ("r-a", "i4"): Answered({}, 0.0, open=2),
        ("r-a", None): Answered({"5xx": 3}, 0.0),
    }
    # Counters lower than before (a reload, a server made again): counted from zero.
    again = parse(stat(("r-a", "i1", 0, 2, 0, 1), ("r-a", "BACKEND", 0, 2, 0, 1)))
    assert window(after, again) == {("r-a", "i1"): Answered({"2xx": 2}, 2.0)}
    assert window(again, again) == {}


def test_samples_are_the_windows_of_the_routes_instances():
    route = EdgeRoute(host="a.x", path="/", service_id="svc", port=80, protocol="http",
                      regions=("fra",))  # fmt: skip
    backend = route.backend("fra")
    answered = {
        (backend, "i1"): Answered({"2xx": 3}, 30.0, open=1),
        (backend, None): Answered({"5xx": 2}, 0.0),
        ("no_app", None): Answered({"4xx": 9}, 0.0),  # requests to no app: nobody's
    }
    found = samples(EdgeTable(routes=[route]), answered, {(backend, "i1"): [5.0, 7.0]}, 10, 1)
    assert [(s.service_id, s.instance_id, s.requests, s.open) for s in found] == [
        ("svc", "i1", 3, 1),
        ("svc", None, 2, 0),
    ]
    assert found[0].response_ms == [5, 7, 7, 7] and found[1].response_ms == []
