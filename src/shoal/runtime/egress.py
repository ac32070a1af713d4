"""The host's side of an instance's network: no instance reaches the host (`shield`, for
every network), and outbound network for an instance that asks for it (`SandboxSpec.egress`):
NAT to the world outside the host, and to nothing on it.

`shield` drops what an instance sends to the host itself (but for the answers to connections
the host made: health checks, the proxy), on any of the host's addresses, and takes the IPv6
link-local address off the host's end of its veth: a service listening on the host's
addresses is out of every instance's reach.

The instance gets a default route through the host's end of its veth (netns.route_out); the
host forwards what comes in on that veth and masquerades it behind its own address on
whichever interface the route takes, so a build can download its dependencies
(DNS included: the root's resolv.conf names an outside server). Out of reach stay the host
itself, on any of its addresses (INPUT from the veth is dropped, but for the answers to
connections the host made, such as the proxy's to the instance's port), and every other
instance (nothing is forwarded to the address pool). The host's loopback is not reachable
from another namespace anyway, and the host's end of the veth loses its IPv6 link-local
address (these rules are IPv4's; the host reaches the instance over IPv4).

Forwarding is one switch for the whole host: once on, the host would route to any instance
whatever reaches it (from its LAN, say), and any instance's traffic, egress or not. So
before turning it on, `enable` puts a guard at the top of FORWARD that drops everything from
or to the pool; each instance's own rules go above it (the top of their chains, ahead of
whatever else the host has there). Forwarding and the guard stay when instances go: other
instances may need them, and the guard lets nothing through.

Rules carry an iptables comment, `shoal:<veth>` for an instance's and `shoal:<pool>` for
the guard, so `disable` finds an instance's from its veth alone, after an agent restart too.
Each change is one `iptables-save` and one atomic `iptables-restore --noflush`.
"""

from __future__ import annotations

import ipaddress
import shlex
import shutil
import subprocess
import threading
from pathlib import Path

from shoal.core.mesh import MESH_POOL
from shoal.runtime import netns
from shoal.runtime.addresses import Lease
from shoal.runtime.driver import SandboxError
from shoal.runtime.netns import Network

_IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
_TAG = "shoal:"
_ANSWERS = "RELATED,ESTABLISHED"  # conntrack states of the answers to a connection
_lock = threading.Lock()  # between reading the rules and changing them

_Change = tuple[str, str]  # a table and an iptables-restore line


def enable(net: Network, lease: Lease, pool: ipaddress.IPv4Network) -> None:
    """Let the instance reach the outside world (idempotent)."""
    veth, tag, guard = net.veth, f"{_TAG}{net.veth}", f"{_TAG}{pool}"
    with _lock:
        rules = _tagged(tag, guard)
        changes = _deletions(rules, net)
        if not any(comment == guard for _, comment, _ in rules):
            changes += [
                ("filter", f"-I FORWARD -s {pool} -m comment --comment {guard} -j DROP"),
                ("filter", f"-I FORWARD -d {pool} -m comment --comment {guard} -j DROP"),
            ]
        mine = f"-m comment --comment {tag}"
        changes += [
            ("filter", f"-I FORWARD -i {veth} ! -d {pool} {mine} -j ACCEPT"),
            ("filter", f"-I FORWARD -o {veth} -m conntrack --ctstate {_ANSWERS} {mine} -j ACCEPT"),
            ("filter", f"-I INPUT -i {veth} -m conntrack ! --ctstate {_ANSWERS} {mine} -j DROP"),
            ("nat", f"-I POSTROUTING -s {lease.instance} ! -o {veth} {mine} -j MASQUERADE"),
        ]
        _restore(changes)
    _no_ipv6(net)
    if _IP_FORWARD.read_text().strip() != "1":  # only now that the guard is there
        _IP_FORWARD.write_text("1")
    netns.route_out(net, lease)


def shield(net: Network) -> None:
    """Keep the instance off the host (idempotent; `disable` undoes it)."""
    mine = f"-m comment --comment {_TAG}{net.veth}"
    with _lock:
        changes = _deletions(_tagged(f"{_TAG}{net.veth}"), net)
        changes.append(
            ("filter", f"-I INPUT -i {net.veth} -m conntrack ! --ctstate {_ANSWERS} {mine} -j DROP")
        )
        _restore(changes)
    _no_ipv6(net)


def join_mesh(net: Network, lease: Lease, block: str) -> None:
    """Let the instance reach its organization's block of the private mesh (core/mesh.py),
    whose addresses are the host's own (the edge listens there): a route through the host,
    and TCP to that block alone let in past the shield; the rest of the mesh refuses at once
    (a reset, not a silence: another organization's address fails fast)."""
    mine = f"-m comment --comment {_TAG}{net.veth}"
    veth, pool = net.veth, MESH_POOL
    with _lock:
        _restore(
            [  # each inserted at the top: the last one is the first rule
                (
                    "filter",
                    f"-I INPUT -i {veth} -d {pool} -p tcp {mine} -j REJECT --reject-with tcp-reset",
                ),
                ("filter", f"-I INPUT -i {veth} -d {block} -p tcp {mine} -j ACCEPT"),
            ]
        )
    netns.route_mesh(net, lease)


def _no_ipv6(net: Network) -> None:
    ipv6 = Path("/proc/sys/net/ipv6/conf", net.veth, "disable_ipv6")
    if ipv6.exists():  # not on a kernel without IPv6
        ipv6.write_text("1")


def disable(net: Network) -> None:
    """Remove the instance's rules (its shield's too), found by their comment (idempotent)."""
    with _lock:
        _restore(_deletions(_tagged(f"{_TAG}{net.veth}"), net))


def _tagged(*comments: str) -> list[tuple[str, str, str]]:
    """Every rule with one of these comments: its table, the comment, and the rule as saved.
    Only the lines that hold one are parsed: a node keeps four or five rules an instance, and
    its thousandth instance must not start slower than its first."""
    rules: list[tuple[str, str, str]] = []
    table = ""
    if shutil.which("iptables-save") is None:  # so no rules to remove: destroy goes on
        return rules
    for line in _run(["iptables-save"]).splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith("-A ") and any(c in line for c in comments):
            args = shlex.split(line)
            comment = args[args.index("--comment") + 1] if "--comment" in args else ""
            if comment in comments:
                rules.append((table, comment, line))
    return rules


def _deletions(rules: list[tuple[str, str, str]], net: Network) -> list[_Change]:
    mine = f"{_TAG}{net.veth}"
    return [(table, "-D" + line[2:]) for table, comment, line in rules if comment == mine]


def _restore(changes: list[_Change]) -> None:
    lines = []
    for table in dict.fromkeys(table for table, _ in changes):
        lines += [f"*{table}", *(line for t, line in changes if t == table), "COMMIT"]
    if lines:
        _run(["iptables-restore", "--noflush", "-w"], "\n".join(lines) + "\n")


def _run(argv: list[str], stdin: str | None = None) -> str:
    try:
        result = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise SandboxError(f"egress needs {argv[0]}: run scripts/install-system-deps") from None
    if result.returncode != 0:
        raise SandboxError(f"{argv[0]} failed: {result.stderr.strip()}")
    return result.stdout
