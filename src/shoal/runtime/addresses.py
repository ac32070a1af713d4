"""Private addresses for instances: one /30 per instance out of a configurable IPv4 pool.

Slot N of the pool is the N-th /30: its first host address stays on the host's end of the
instance's veth pair, the second is the instance's. A slot is held by the file
`<leases>/<N>`, which names its holder (an instance id, or SPARE for a network made ready
before any instance asked for it), so leases survive an agent restart and leftovers can be
matched to instances. Changes happen under an exclusive lock on the directory, which holds
between threads and processes alike. Slots are handed out round-robin, so an address just
given up is not at once someone else's while clients may still hold connections to it.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from shoal.runtime.driver import SandboxError

SPARE = "-spare-"  # the holder of a ready network no instance has yet (not a valid instance id)
GOING = "-going-"  # the holder of a network being deleted
MAKING = "-making-"  # the holder of a spare network being made
_PREFIX = 30


@dataclass(frozen=True)
class Lease:
    slot: int
    network: ipaddress.IPv4Network

    @property
    def host(self) -> ipaddress.IPv4Address:
        return self.network.network_address + 1

    @property
    def instance(self) -> ipaddress.IPv4Address:
        return self.network.network_address + 2


class AddressPool:
    def __init__(self, pool: str, leases: Path) -> None:
        self.pool = ipaddress.IPv4Network(pool)
        if self.pool.prefixlen > _PREFIX:
            raise ValueError(f"address pool {pool} is smaller than one /{_PREFIX}")
        self.size = self.pool.num_addresses >> (32 - _PREFIX)
        self.leases = leases
        leases.mkdir(parents=True, exist_ok=True)
        self._next = max(self.holders(), default=-1) + 1

    def lease(self, slot: int) -> Lease:
        base = self.pool.network_address + (slot << (32 - _PREFIX))
        return Lease(slot, ipaddress.IPv4Network((base, _PREFIX)))

    def slot_of(self, network_address: ipaddress.IPv4Address) -> int | None:
        """The slot whose /30 starts at `network_address`, if it is one of this pool's."""
        if network_address not in self.pool:
            return None
        offset = int(network_address) - int(self.pool.network_address)
        return None if offset % (1 << (32 - _PREFIX)) else offset >> (32 - _PREFIX)

    def allocate(self, holder: str) -> Lease:
        """A free slot, the first one after the last handed out, now held by `holder`."""
        with self._locked():
            taken = self.holders()
            for step in range(self.size):
                slot = (self._next + step) % self.size
                if slot not in taken:
                    self._hold(slot, holder)
                    self._next = slot + 1
                    return self.lease(slot)
        raise SandboxError(f"address pool {self.pool} is exhausted ({self.size} instances)")

    def claim_spare(self, holder: str) -> Lease | None:
        """A slot held by SPARE, now held by `holder`; None if there is none."""
        with self._locked():
            for slot, current in sorted(self.holders().items()):
                if current == SPARE:
                    self._hold(slot, holder)
                    return self.lease(slot)
        return None

    def hand_over(self, slot: int, holder: str, to: str) -> bool:
        """Give the slot to `to` if `holder` still holds it (another thread may have claimed
        it since it was seen): whether it did."""
        with self._locked():
            if self.holders().get(slot) != holder:
                return False
            self._hold(slot, to)
            return True

    def release(self, slot: int) -> None:
        (self.leases / str(slot)).unlink(missing_ok=True)

    def holders(self) -> dict[int, str]:
        """Every held slot and its holder."""
        found = {}
        for p in self.leases.iterdir():
            if p.name.isdigit():
                try:
                    found[int(p.name)] = p.read_text()
                except FileNotFoundError:  # released meanwhile
                    continue
        return found

    def _hold(self, slot: int, holder: str) -> None:
        tmp = self.leases / f"{slot}.tmp"
        tmp.write_text(holder)
        tmp.replace(self.leases / str(slot))

    @contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.leases, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
