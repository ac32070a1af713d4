"""An instance's own firewall, in its network namespace: connections come in on its exposed
ports only; everything else the instance did not ask for is refused (a TCP reset or an
ICMP error, so that a client fails at once rather than waiting). An instance with no
exposed port (a worker, a build) accepts no connection at all. Answers to the instance's
own connections (its outbound calls, its DNS lookups) come back.

Who can reach an exposed port at all is the host's business (egress.py): the host itself,
that is the edge and the agent's health checks.
"""

from __future__ import annotations

from collections.abc import Iterable

from shoal.runtime import netns
from shoal.runtime.netns import Network


def rules(ports: Iterable[int]) -> str:
    """The namespace's whole IPv4 filter table, for iptables-restore (pure)."""
    exposed = [
        f"-A INPUT -p tcp --dport {port} -m conntrack --ctstate NEW -j ACCEPT"
        for port in sorted(set(ports))
    ]
    return "\n".join(
        [
            "*filter",
            ":INPUT DROP [0:0]",
            ":FORWARD DROP [0:0]",
            ":OUTPUT ACCEPT [0:0]",
            "-A INPUT -i lo -j ACCEPT",
            "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            *exposed,
            "-A INPUT -p tcp -j REJECT --reject-with tcp-reset",
            "-A INPUT -j REJECT --reject-with icmp-port-unreachable",
            "COMMIT",
            "",
        ]
    )


def apply(net: Network, ports: Iterable[int]) -> None:
    """Replace the namespace's rules with those for `ports`."""
    netns.run(net, ["iptables-restore", "-w"], rules(ports))
