"""Real sandboxes with outbound network: NAT to an outside world the test makes (a namespace
joined to the host by its own veth pair), and nothing on the host or in other instances."""

from __future__ import annotations

import ipaddress
import json
import shlex
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from tests.runtime.sandboxes import POOL, PORT, Sandboxes, wait_http

from shoal.runtime import egress, kernel
from shoal.runtime.addresses import AddressPool
from shoal.runtime.records import Record

IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
OUTSIDE = ipaddress.IPv4Network("198.18.0.0/30")  # the benchmarking range: routed nowhere
GATEWAY, SERVER = OUTSIDE[1], OUTSIDE[2]  # the host's end, the outside world's


class PeerServer:
    """A TCP server on every address, IPv4 and IPv6, of the namespace at `netns` or of the
    host's: it answers each connection with the address the connection came from."""

    def __init__(self, netns: Path | None = None) -> None:
        self.netns = netns
        self.socket = socket_in(netns, socket.AF_INET6)
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        self.socket.bind(("::", 0))
        self.socket.listen()
        self.port: int = self.socket.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, peer = self.socket.accept()
            except OSError:  # closed
                return
            address = ipaddress.IPv6Address(peer[0])
            with conn:
                conn.sendall(f"{address.ipv4_mapped or address}\n".encode())

    def close(self) -> None:
        self.socket.shutdown(socket.SHUT_RDWR)  # wakes the accept
        self.socket.close()


@pytest.fixture
def firewall() -> Iterator[None]:
    """Puts the host back as it was: without the guard for the tests' pool, and with
    forwarding as it was, unless an instance outside the tests has egress now."""
    forwarding = IP_FORWARD.read_text()
    yield
    for line in iptables_save().splitlines():
        if f'"shoal:{POOL}"' in line:
            subprocess.run(["iptables", "-w", *shlex.split("-D" + line[2:])], check=True)
    if '"shoal:sh' not in iptables_save():
        IP_FORWARD.write_text(forwarding)


@pytest.fixture
def outside() -> Iterator[PeerServer]:
    """The outside world: a namespace with a server at SERVER, reached through GATEWAY on the
    host, and a default route back to the host (which, were it not for the firewall, would
    carry the answers to a sandbox's own address)."""
    name = f"egress-test-{uuid.uuid4().hex[:6]}"
    veth = f"egt{name[-6:]}"
    server = None
    try:
        ip(
            f"netns add {name}",
            f"link add {veth} type veth peer name eth0 netns {name}",
            f"addr add {GATEWAY}/{OUTSIDE.prefixlen} dev {veth}",
            f"link set {veth} up",
        )
        ip(
            f"addr add {SERVER}/{OUTSIDE.prefixlen} dev eth0",
            "link set eth0 up",
            f"route add default via {GATEWAY}",
            netns=name,
        )
        server = PeerServer(Path("/run/netns", name))
        yield server
    finally:
        if server is not None:
            server.close()
        subprocess.run(["ip", "link", "del", veth], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


@pytest.fixture
def host_server() -> Iterator[PeerServer]:
    server = PeerServer()
    yield server
    server.close()


def test_egress_reaches_the_outside_through_nat_and_nothing_on_the_host(
    firewall: None, outside: PeerServer, host_server: PeerServer, sandbox: Sandboxes
):
    out = sandbox.driver.start(replace(sandbox.httpd(), egress=True))
    closed = sandbox.driver.start(sandbox.httpd())
    assert out.address and closed.address
    wait_http(out.address)  # the host still reaches it
    wait_http(closed.address)
    recorded = record_of(sandbox, out.instance_id)
    veth = recorded.veth
    rules = ours(veth)
    assert len([line for line in rules if veth in line]) == 4
    assert ip_out("-6", "addr", "show", "dev", veth) == ""  # nothing to reach over IPv6

    # Masqueraded: the outside world sees the host's address, not the instance's.
    assert sandbox.run(out.instance_id, connect(SERVER, outside.port)) == (0, f"{GATEWAY}\n")
    code, _ = sandbox.run(closed.instance_id, connect(SERVER, outside.port))
    assert code != 0

    # Not the host on any of its addresses, nor another instance; all at once, as each try
    # waits out its timeout. The outside world, again, tells that the tries did run.
    targets = [(address, host_server.port) for address in host_addresses()]
    targets += [(closed.address, PORT), (SERVER, outside.port)]
    assert (str(ipaddress.ip_address(out.address) - 1), host_server.port) in targets  # its veth's
    tries = " ".join(f"({connect(address, port)} 2>/dev/null) &" for address, port in targets)
    assert sandbox.run(out.instance_id, f"{tries} wait") == (0, f"{GATEWAY}\n")
    # An instance without egress is kept off the host too: its veth's host address (the
    # only one it has a route to) answers nothing, over IPv4 or IPv6.
    closed_veth = record_of(sandbox, closed.instance_id).veth
    host_end = str(ipaddress.ip_address(closed.address) - 1)
    _, answer = sandbox.run(closed.instance_id, connect(host_end, host_server.port))
    assert closed.address not in answer and "timed out" in answer, answer
    assert ip_out("-6", "addr", "show", "dev", closed_veth) == ""

    # Nor does the host forward to instances what comes from the outside world.
    for address in (out.address, closed.address):
        with socket_in(outside.netns) as client:
            client.settimeout(1)
            assert client.connect_ex((address, PORT)) != 0

    # Enabling again changes nothing; destroyed by another driver, as after an agent
    # restart, the instance leaves no rule naming its veth.
    pool = AddressPool(POOL, sandbox.state_dir / "leases")
    egress.enable(recorded.network, pool.lease(recorded.slot), pool.pool)
    assert ours(veth) == rules
    sandbox.new_driver().destroy(out.instance_id)
    assert veth not in iptables_save()
    egress.disable(recorded.network)  # idempotent


def socket_in(netns: Path | None, family: int = socket.AF_INET) -> socket.socket:
    """A TCP socket of the namespace at `netns` (or of the host's): it stays in the
    namespace it was made in, whichever thread then uses it."""
    made: list[socket.socket] = []

    def make() -> None:  # in a thread of its own: setns moves only the calling thread
        if netns is not None:
            kernel.setns(netns, kernel.CLONE_NEWNET)
        made.append(socket.socket(family))

    thread = threading.Thread(target=make)
    thread.start()
    thread.join()
    return made[0]


def connect(address: str | ipaddress.IPv4Address, port: int) -> str:
    """An HTTP request, which the peer servers ignore and httpd answers."""
    return f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 1 {address} {port}"


def host_addresses() -> list[str]:
    """Every IPv4 address of the host's but loopback's (a sandbox has its own)."""
    links = json.loads(ip_out("-j", "-4", "addr"))
    return [
        a["local"] for link in links for a in link["addr_info"] if not a["local"].startswith("127.")
    ]


def record_of(sandbox: Sandboxes, instance_id: str) -> Record:
    record = Record.load(sandbox.state_dir / "instances" / instance_id / "instance.json")
    assert record is not None
    return record


def ours(veth: str) -> list[str]:
    """The rules of the sandbox at `veth` and the tests' pool guard (the host may have others:
    instances outside the tests)."""
    return [
        line
        for line in iptables_save().splitlines()
        if f"shoal:{veth}" in line or f"shoal:{POOL}" in line
    ]


def iptables_save() -> str:
    return subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout


def ip(*commands: str, netns: str | None = None) -> None:
    options = ["-n", netns] if netns else []
    subprocess.run(
        ["ip", *options, "-batch", "-"], input="\n".join(commands) + "\n", text=True, check=True
    )


def ip_out(*args: str) -> str:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=True).stdout
