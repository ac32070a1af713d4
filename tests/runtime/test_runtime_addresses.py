"""Address leases: one /30 per instance, allocated without collision, kept on disk."""

from __future__ import annotations

import ipaddress
from concurrent.futures import ThreadPoolExecutor

import pytest

from shoal.runtime.addresses import GOING, SPARE, AddressPool
from shoal.runtime.driver import SandboxError


def test_lease_addresses(tmp_path):
    pool = AddressPool("100.64.0.0/10", tmp_path)
    assert pool.size == 2**20
    lease = pool.lease(3)
    assert lease.network == ipaddress.IPv4Network("100.64.0.12/30")
    assert (str(lease.host), str(lease.instance)) == ("100.64.0.13", "100.64.0.14")


def test_allocations_never_collide_and_survive_a_new_pool_object(tmp_path):
    pool = AddressPool("10.200.0.0/24", tmp_path)
    with ThreadPoolExecutor(8) as ex:
        leases = list(ex.map(pool.allocate, [f"i{n}" for n in range(40)]))
    assert len({lease.slot for lease in leases}) == 40
    again = AddressPool("10.200.0.0/24", tmp_path)  # e.g. after an agent restart
    assert again.holders() == {lease.slot: f"i{n}" for n, lease in enumerate(leases)}
    assert again.allocate("next").slot == 40


def test_slots_go_round_robin_so_a_released_address_is_not_reused_at_once(tmp_path):
    pool = AddressPool("10.200.0.0/28", tmp_path)  # 4 slots
    first = pool.allocate("a")
    pool.allocate("b")
    pool.release(first.slot)
    assert [pool.allocate(x).slot for x in "cd"] == [2, 3]
    assert pool.allocate("e").slot == first.slot  # wrapped around to the free one
    assert pool.holders() == {0: "e", 1: "b", 2: "c", 3: "d"}
    pool.release(99)  # releasing a free slot is fine


def test_spares_are_claimed_by_exactly_one_instance(tmp_path):
    pool = AddressPool("10.200.0.0/24", tmp_path)
    spares = {pool.allocate(SPARE).slot for _ in range(3)}
    with ThreadPoolExecutor(8) as ex:
        claimed = list(ex.map(pool.claim_spare, [f"i{n}" for n in range(8)]))
    won = [lease.slot for lease in claimed if lease is not None]
    assert sorted(won) == sorted(spares)
    assert SPARE not in pool.holders().values()
    assert pool.claim_spare("late") is None


def test_a_spare_claimed_meanwhile_is_not_taken_back(tmp_path):
    """A driver trimming its spares races starts claiming them (both in threads): the trim
    hands a spare over only if it still is one, and reading the leases while others are
    released never fails."""
    pool = AddressPool("10.200.0.0/24", tmp_path)
    spares = [pool.allocate(SPARE).slot for _ in range(40)]

    def trim(slot: int) -> bool:
        return pool.hand_over(slot, SPARE, GOING)

    with ThreadPoolExecutor(8) as ex:
        claims = ex.map(pool.claim_spare, [f"i{n}" for n in range(20)])
        trims = ex.map(trim, spares)
        reads = ex.map(lambda _: pool.holders(), range(40))
        for slot, trimmed in zip(spares, trims, strict=True):
            if trimmed:
                pool.release(slot)
        won = {lease.slot: lease for lease in claims if lease is not None}
        list(reads)
    holders = pool.holders()
    assert all(holders[slot].startswith("i") for slot in won)  # every claim kept its network
    assert set(holders.values()) <= {f"i{n}" for n in range(20)}  # every spare claimed or gone


def test_exhaustion_is_a_clear_error(tmp_path):
    pool = AddressPool("10.200.0.0/29", tmp_path)
    pool.allocate("a"), pool.allocate("b")
    with pytest.raises(SandboxError, match="exhausted"):
        pool.allocate("c")


def test_pool_smaller_than_one_lease_is_refused(tmp_path):
    with pytest.raises(ValueError):
        AddressPool("10.200.0.0/31", tmp_path)


def test_slot_of_maps_a_leases_network_address_back_to_its_slot(tmp_path):
    pool = AddressPool("100.64.0.0/24", tmp_path)
    assert pool.slot_of(ipaddress.IPv4Address("100.64.0.12")) == 3
    assert pool.slot_of(ipaddress.IPv4Address("100.64.0.13")) is None  # not a /30's start
    assert pool.slot_of(ipaddress.IPv4Address("100.65.0.12")) is None  # another pool's
