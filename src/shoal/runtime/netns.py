"""An instance's network: a named network namespace joined to the host by a veth pair.

The namespace is created with `ip netns add`, so it is bound at /run/netns/NAME and outlives
the agent; the sandbox is started inside it (`enter`) and `exec` finds it there. Its `eth0`
gets the lease's instance address (and a default route only with outbound access); the
host's end holds the lease's host address, so the host reaches the instance at
`address:port` and every instance can listen on the same port. The instance has its own
loopback: the host's is not reachable from inside. Anything further (the instance's
firewall, NAT for outbound traffic) belongs in a module of its own next to this one.

All of it costs two `ip -batch` processes (one per namespace) and one thread.
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from shoal.core.mesh import MESH_POOL
from shoal.runtime import kernel
from shoal.runtime.addresses import Lease
from shoal.runtime.driver import SandboxError

NETNS_DIR = Path("/run/netns")
_IFNAME = "eth0"
_NAMED = re.compile(r"(?:shoal-|sh)([0-9a-f]{8})")


@dataclass(frozen=True)
class Network:
    netns: str  # name under /run/netns
    veth: str  # the host's end of the pair (at most 15 characters)

    @property
    def path(self) -> Path:
        return NETNS_DIR / self.netns


def network_for(lease: Lease) -> Network:
    # Named after the address, which no two networks share, so a network can be made before
    # the instance that will use it is known.
    name = f"{int(lease.network.network_address):08x}"
    return Network(f"shoal-{name}", f"sh{name}")


def create(net: Network, lease: Lease) -> None:
    prefix = lease.network.prefixlen
    _ip_batch(
        [],
        [
            f"netns add {net.netns}",
            f"link add {net.veth} type veth peer name {_IFNAME} netns {net.netns}",
            f"addr add {lease.host}/{prefix} dev {net.veth}",
            f"link set {net.veth} up",
        ],
    )
    # Let the instance's processes bind ports under 1024 without any capability: it is
    # their own namespace, and the sandbox drops every capability.
    _in_netns(net, lambda: Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").write_text("0"))
    _ip_batch(
        ["-n", net.netns],
        [
            f"addr add {lease.instance}/{prefix} dev {_IFNAME}",
            f"link set {_IFNAME} up",
            "link set lo up",
        ],
    )


def route_out(net: Network, lease: Lease) -> None:
    """A default route through the host, for an instance with outbound access (egress.py).
    Without one, an instance reaches its host's end alone, and a connection anywhere else
    (a DNS lookup included) fails at once instead of waiting for an answer never coming."""
    _ip_batch(["-n", net.netns], [f"route replace default via {lease.host}"])


def route_mesh(net: Network, lease: Lease) -> None:
    """The private mesh's addresses through the host (egress.join_mesh)."""
    _ip_batch(["-n", net.netns], [f"route replace {MESH_POOL} via {lease.host}"])


def fence(pool: ipaddress.IPv4Network) -> None:
    """Make the pool's addresses that no instance holds unreachable from the host (each
    instance's own /30 route is more specific): a connection to an instance that has gone
    fails at once, here, instead of following the host's default route off the machine."""
    _ip_batch([], [f"route replace unreachable {pool}"])


def delete(net: Network) -> None:
    """Remove the veth pair and the namespace; missing parts are fine (idempotent)."""
    commands = []
    # Deleting the pair here rather than letting the namespace's teardown do it frees the
    # name and address at once: namespace teardown runs later, in the kernel's own time.
    if Path("/sys/class/net", net.veth).exists():
        commands.append(f"link del {net.veth}")
    if net.path.exists():
        commands.append(f"netns del {net.netns}")
    if commands:
        _ip_batch([], commands)


def named_addresses() -> set[ipaddress.IPv4Address]:
    """The lease addresses that namespaces or host-side veths on this host are named after."""
    names = [p.name for p in NETNS_DIR.iterdir()] if NETNS_DIR.is_dir() else []
    names += [p.name for p in Path("/sys/class/net").iterdir()]
    return {ipaddress.IPv4Address(int(m.group(1), 16)) for m in map(_NAMED.fullmatch, names) if m}


def enter(net: Network) -> None:
    """Move the calling thread (a child about to exec the sandbox) into the namespace."""
    kernel.setns(net.path, kernel.CLONE_NEWNET)


def run(net: Network, argv: list[str], stdin: str = "") -> None:
    """Run a command inside the namespace (its network only), raising SandboxError with
    its words if it fails."""

    def command() -> None:
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]}: {done.stderr.strip()}")

    _in_netns(net, command)


def _in_netns(net: Network, action: Callable[[], object]) -> None:
    # setns moves only the calling thread, so a short-lived thread keeps the agent's own out.
    failure: list[BaseException] = []

    def run() -> None:
        try:
            enter(net)
            action()
        except BaseException as e:
            failure.append(e)

    thread = threading.Thread(target=run, name=f"netns-{net.netns}")
    thread.start()
    thread.join()
    if failure:
        raise SandboxError(f"configuring network namespace {net.netns}: {failure[0]}")


def _ip_batch(options: list[str], commands: list[str]) -> None:
    result = subprocess.run(
        ["ip", *options, "-batch", "-"],
        input="\n".join(commands) + "\n",
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SandboxError(f"ip {' '.join(options)} -batch failed: {result.stderr.strip()}")
