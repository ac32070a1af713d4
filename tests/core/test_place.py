"""Placement picks a feasible node of the region, the emptiest first."""

from __future__ import annotations

from shoal.scheduler.place import Demand, NodeView, place, why_not


def node(name, region="fra", cpus=2.0, mem=4096, rc=0.0, rm=0, same=0) -> NodeView:
    return NodeView(name, name, region, cpus, mem, rc, rm, same)


def test_only_the_region_and_only_with_room():
    d = Demand("fra", 1.0, 1024)
    assert place(d, [node("a", region="was")]) is None
    assert place(d, [node("a", rc=1.5)]) is None
    assert place(d, [node("a", rm=3500)]) is None
    assert place(d, [node("a")]).name == "a"


def test_spreads_replicas_then_fills_the_emptiest():
    d = Demand("fra", 0.25, 256)
    assert place(d, [node("a", same=1), node("b", rm=2000)]).name == "b"
    assert place(d, [node("a", rm=1000), node("b", rm=2000)]).name == "a"
    assert place(d, [node("b"), node("a")]).name == "a"


def test_says_why_nothing_fits():
    d = Demand("sin", 1.0, 1024)
    assert why_not(d, [node("a")]) == "No node is available in region sin"
    assert "1 vCPU and 1024MB" in why_not(Demand("fra", 1.0, 1024), [node("a", rm=4000)])
