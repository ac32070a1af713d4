"""A region's load second by second, from its instances' request samples (pure part of the
autoscaler's loop; the loop itself runs in tests/e2e/test_autoscale.py)."""

from __future__ import annotations

from shoal.autoscale.policy import Second
from shoal.control.autoscaler import seconds
from shoal.core.metrics import RequestSample


def sample(inst: str, at: float, requests: int, p: list[float]) -> RequestSample:
    return RequestSample(
        service_id="svc",
        instance_id=inst,
        at=at,
        seconds=1,
        requests=requests,
        busy_ms=requests * 100.0,
        response_ms=p,
    )


def test_instances_of_one_window_add_up_and_quantiles_round_up():
    xs = [
        sample("i1", 10, 10, [5, 9, 20, 30]),
        sample("i2", 10, 30, [7, 11, 40, 50]),
        sample("i1", 11, 2, []),  # none timed (sampled out)
    ]
    assert seconds(xs, 95) == [  # p95: read from the p99s
        Second(10, 40, 4.0, (10 * 20 + 30 * 40) / 40),
        Second(11, 2, 0.2, None),
    ]
    assert seconds(xs, 50)[0].response_ms == (10 * 5 + 30 * 7) / 40
    assert seconds(xs, 100)[0].response_ms == (10 * 30 + 30 * 50) / 40  # the max
