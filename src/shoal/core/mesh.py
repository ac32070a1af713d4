"""The private mesh (pure): how an organization's instances reach its web services by name.

Each organization has its own block of MESH_POOL (BLOCK_PREFIX: 1,022 addresses); each of
its web services gets two addresses there: one for the service in all its regions, one per
region for the instances of that region. Inside an instance, /etc/hosts names them:

- `<service>`: a service of the same app, in any region;
- `<service>.<app>.internal`: any service of the organization, in the instance's region.

The edge listens on those addresses on the service's ports and forwards to its healthy
instances; an instance reaches its own organization's block only (the host's firewall), so
another organization's services neither resolve nor connect.
"""

from __future__ import annotations

import ipaddress
import itertools

from shoal.core.definition import Wire

MESH_POOL = ipaddress.IPv4Network("100.112.0.0/12")
BLOCK_PREFIX = 22
BLOCKS = 2 ** (BLOCK_PREFIX - MESH_POOL.prefixlen)
ALL_REGIONS = ""  # the scope of a service's address in every region


class Mesh(Wire):
    """What an instance needs of the mesh: its organization's block, and its /etc/hosts."""

    block: str
    hosts: str


def block(index: int) -> ipaddress.IPv4Network:
    """The `index`-th organization's block."""
    if not 0 <= index < BLOCKS:
        raise ValueError(f"the mesh holds {BLOCKS} organizations")
    size = 2 ** (32 - BLOCK_PREFIX)
    base = int(MESH_POOL.network_address) + index * size
    return ipaddress.IPv4Network((base, BLOCK_PREFIX))


def free_addresses(index: int, taken: set[str], count: int) -> list[str]:
    """The first `count` addresses of the `index`-th organization's block that are not
    `taken` (ValueError when the block has not so many left)."""
    net = block(index)
    found = list(itertools.islice((str(a) for a in net.hosts() if str(a) not in taken), count))
    if len(found) < count:
        raise ValueError(f"an organization's block holds {net.num_addresses - 2} addresses")
    return found


def hosts(
    app_id: str,
    region: str,
    services: list[tuple[str, str, str, dict[str, str]]],
) -> str:
    """/etc/hosts for an instance of `app_id` in `region`: `services` are the organization's
    (app id, app name, service name, scope -> address)."""
    lines = ["127.0.0.1 localhost", "::1 localhost"]
    for app, app_name, name, addresses in sorted(services):
        if app == app_id and ALL_REGIONS in addresses:
            lines.append(f"{addresses[ALL_REGIONS]} {name}")
        if region in addresses:
            lines.append(f"{addresses[region]} {name}.{app_name}.internal")
    return "\n".join(lines) + "\n"
