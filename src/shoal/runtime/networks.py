"""Instance networks, made before they are asked for.

Creating a namespace, a veth pair and their addresses takes 5 to 15 ms, more while the
kernel is still tearing down a deleted namespace (and the host's firewall rules keeping the
instance off the host, egress.shield), and it is the largest step of a start. So
the driver keeps a few networks ready (leases held by SPARE): a start claims one, and
`keep_spares` makes new ones after a destroy and when the driver starts. A network is never
handed from one instance to the next: each destroy deletes its own.
"""

from __future__ import annotations

from shoal.runtime import egress, netns
from shoal.runtime.addresses import GOING, MAKING, SPARE, AddressPool, Lease


class Networks:
    def __init__(self, pool: AddressPool, spares: int) -> None:
        self.pool = pool
        self.spares = spares
        netns.fence(pool.pool)

    def acquire(self, instance_id: str) -> Lease:
        """A ready network for the instance: a spare if there is one, else a new one."""
        lease = self.pool.claim_spare(instance_id)
        if lease is None:
            lease = self._create(instance_id)
        return lease

    def release(self, slot: int) -> None:
        _delete(netns.network_for(self.pool.lease(slot)))
        self.pool.release(slot)

    def keep_spares(self) -> None:
        """Make or delete spares until there are as many as wanted. Starts and destroys run
        at once, in threads: a spare seen here may be claimed before it is deleted, so it
        is deleted only if it still is one."""
        holders = self.pool.holders()
        ready = [slot for slot, holder in holders.items() if holder == SPARE]
        making = sum(1 for holder in holders.values() if holder == MAKING)
        for slot in ready[self.spares :]:
            if self.pool.hand_over(slot, SPARE, GOING):
                self.release(slot)
        for _ in range(self.spares - len(ready) - making):
            self._create(SPARE)

    def collect(self, live: set[str]) -> None:
        """Release networks no live instance holds, spares lost with /run (a reboot), and
        networks named after this pool's addresses that no lease holds (a lost state
        directory: one driver per pool, so they are this driver's)."""
        holders = self.pool.holders()
        for slot, holder in holders.items():
            lost = holder == SPARE and not netns.network_for(self.pool.lease(slot)).path.exists()
            if lost or holder not in live | {SPARE}:  # (GOING, MAKING too: cut short)
                self.release(slot)
        for address in netns.named_addresses():
            unheld = self.pool.slot_of(address)
            if unheld is not None and unheld not in holders:
                _delete(netns.network_for(self.pool.lease(unheld)))

    def _create(self, holder: str) -> Lease:
        """A new network for `holder`. A spare is held by MAKING until it is complete: a
        start must not claim it, nor a trim delete it, half made."""
        lease = self.pool.allocate(MAKING if holder == SPARE else holder)
        try:
            net = netns.network_for(lease)
            netns.create(net, lease)
            egress.shield(net)
        except BaseException:
            self.release(lease.slot)
            raise
        if holder == SPARE:
            self.pool.hand_over(lease.slot, MAKING, SPARE)
        return lease


def _delete(net: netns.Network) -> None:
    """The network and the host's rules about it (found by name: also a lost network's)."""
    egress.disable(net)
    netns.delete(net)
