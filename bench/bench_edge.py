"""Edge benchmark: shoal's edge beside direct access, plain HAProxy and nginx, on one backend.

Run: `.venv/bin/python bench/bench_edge.py` (or `make bench`). About 4 minutes, all traffic on
127.0.0.0/8. It starts its own servers in a temporary directory and stops them at the end; it
never asserts: it prints.

The backend: nginx serving a 43-byte file, listening on every loopback address (127.x.y.z) on
one port, so that an "instance" at any such address is this same server.

What is measured, with the same load (wrk from Debian: 2 threads, 64 connections, keep-alive,
the app's Host header) and the same backend:
  direct       wrk straight to the backend;
  haproxy      plain HAProxy, a hand-written configuration: one frontend, one backend, one
               server, HAProxy's defaults otherwise (keep-alive both sides);
  haproxy, big table
               plain HAProxy hand-written for the big table below: one backend per app chosen
               by its Host, the same 10 servers each, least connections first (the fair
               reference for the big table: what 1,000 servers cost HAProxy itself);
  nginx        nginx proxy_pass to an upstream with keep-alive connections (32);
  shoal edge   `shoal edge`, the real command: HAProxy driven by shoal, which renders its
               configuration from the route table and keeps it in step. The table comes from a
               small server in this process that speaks the control plane's
               /internal/v1/edge/routes (what `shoal up` serves from its store): one app, one
               route, one instance at the backend;
  shoal edge, big table
               the same edge with 100 services and 1,000 instances in its table (10 per
               service, each at its own loopback address); the requests go to one of them.
Every target is measured ROUNDS times, interleaved (so that a slow moment of the machine does
not fall on one target only); each row prints the median round. wrk is a closed loop: its
latencies are those of a client that waits for each answer (no coordinated-omission
correction); they are the same kind for every row, which is what the ratios need.

The goal reported against (issue: edge and networking): shoal's edge at least 0.95x plain
HAProxy's throughput with a p99 at most 1.1x HAProxy's, with the small and with the big table
(each against the plain HAProxy serving the same servers).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import Machine

from shoal.core.edge import EdgeRoute, EdgeServer, EdgeTable

ROUNDS = 5
SECONDS = 6
WARMUP_S = 1
THREADS, CONNECTIONS = 2, 64
HOST = "shop-bench.localhost"
BODY = b"<html><body>hello from the backend</body></html>"[:43]
GOAL_RPS, GOAL_P99 = 0.95, 1.10
BIG = (100, 10)  # the big table: services, instances each
# Each shoal edge against the plain HAProxy serving the same servers.
REFERENCE = {"shoal edge": "haproxy", "shoal edge, big table": "haproxy, big table"}

WRK_SCRIPT = r"""
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"errors":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def wrk(url: str, seconds: float, script: Path) -> Result:
    cmd = [
        "wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "5s",
        "-H", f"Host: {HOST}", "-s", str(script), url,
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30).stdout
    m = re.search(r"^WRKJSON (\{.*\})$", out, re.M)
    if not m:
        raise RuntimeError("no wrk summary: " + out[-300:])
    r = json.loads(m.group(1))
    return Result(
        r["requests"] / (r["duration_us"] / 1e6), r["p50_us"] / 1e3, r["p99_us"] / 1e3, r["errors"]
    )


# ------------------------------------------------------------------------------- servers


def nginx_backend(tmp: Path, port: int) -> subprocess.Popen[bytes]:
    (tmp / "www").mkdir()
    (tmp / "www" / "index.html").write_bytes(BODY)
    conf = tmp / "backend.conf"
    conf.write_text(f"""
daemon off; user root; worker_processes 1; pid {tmp}/backend.pid; error_log {tmp}/backend.err;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  server {{ listen {port} reuseport; root {tmp}/www; }}
}}
""")
    return subprocess.Popen(["nginx", "-c", str(conf), "-p", str(tmp)], stderr=subprocess.DEVNULL)


def nginx_proxy(tmp: Path, port: int, backend: int) -> subprocess.Popen[bytes]:
    conf = tmp / "proxy.conf"
    conf.write_text(f"""
daemon off; user root; worker_processes auto; pid {tmp}/proxy.pid; error_log {tmp}/proxy.err;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  upstream backend {{ server 127.0.0.1:{backend}; keepalive 32; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
""")
    return subprocess.Popen(["nginx", "-c", str(conf), "-p", str(tmp)], stderr=subprocess.DEVNULL)


def plain_haproxy(binary: str, tmp: Path, port: int, backend: int) -> subprocess.Popen[bytes]:
    return _haproxy(binary, tmp / "haproxy.cfg", port, "    default_backend app\n",
                    f"backend app\n    server s1 127.0.0.1:{backend}\n")  # fmt: skip


def plain_haproxy_big(
    binary: str, tmp: Path, port: int, backend: int, services: int, per_service: int
) -> subprocess.Popen[bytes]:
    """Plain HAProxy hand-written for the big table: a backend per app, chosen by its Host,
    with the same servers as the shoal edge's table (`table`), least connections first."""
    sections = []
    for n in range(services):
        servers = "".join(
            f"    server s{k} 127.1.{n}.{k + 1}:{backend}\n" for k in range(per_service)
        )
        sections.append(f"backend app{n}\n    balance leastconn\n{servers}")
    hosts = "".join(
        f"    use_backend app{n} if {{ req.hdr(host) -i {_host(n)} }}\n" for n in range(services)
    )
    return _haproxy(binary, tmp / "haproxy-big.cfg", port, hosts, "".join(sections))


def _haproxy(
    binary: str, conf: Path, port: int, frontend: str, backends: str
) -> subprocess.Popen[bytes]:
    """HAProxy's defaults but for the timeouts, one frontend on `port`."""
    conf.write_text(f"""
global
    maxconn 4000
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend web
    bind 127.0.0.1:{port}
{frontend}
{backends}""")
    return subprocess.Popen([binary, "-db", "-f", str(conf)], stderr=subprocess.DEVNULL)


def _host(n: int) -> str:
    return HOST if n == 0 else f"app{n}-bench.localhost"


def table(services: int, per_service: int, backend: int) -> EdgeTable:
    """`services` apps of one route each, `per_service` instances each at its own loopback
    address; the first app is HOST."""
    routes = []
    for n in range(services):
        servers = tuple(
            EdgeServer(id=f"i-{n}-{k}", address=f"127.1.{n}.{k + 1}", port=backend, region="fra")
            for k in range(per_service)
        )
        routes.append(
            EdgeRoute(
                host=_host(n),
                path="/",
                service_id=f"svc-{n}",
                port=backend,
                protocol="http",
                servers=servers,
            )
        )
    return EdgeTable(routes=routes)


class RouteTableServer:
    """Speaks /internal/v1/edge/routes with a fixed table (a long poll that never changes)."""

    def __init__(self, table: EdgeTable) -> None:
        body = table.model_dump_json().encode()
        etag = table.fingerprint()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if f"known={etag}" in self.path:
                    time.sleep(2)  # nothing changed: hold the answer, as the API does
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()


def shoal_edge(tmp: Path, api: str, port: int, name: str) -> subprocess.Popen[bytes]:
    token = tmp / "token"
    token.write_text("bench\n")
    log = open(tmp / f"{name}.log", "ab")  # noqa: SIM115 - the process keeps it
    return subprocess.Popen(
        [sys.executable, "-m", "shoal", "edge", "--api", api, "--token-file", str(token),
         "--listen", f"127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip


def wait_answering(url: str, what: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            r = httpx.get(url, headers={"Host": HOST}, timeout=1)
            if r.status_code == 200 and r.content == BODY:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not serve the backend's file within 30 s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------------------- main


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    haproxy = shutil.which("haproxy", path="/usr/sbin:/usr/bin:/usr/local/sbin")
    missing = [
        n
        for n, p in (
            ("wrk", shutil.which("wrk")),
            ("nginx", shutil.which("nginx", path="/usr/sbin:/usr/bin")),
            ("haproxy", haproxy),
        )
        if not p
    ]
    if missing or haproxy is None:
        print(f"missing: {', '.join(missing)} (scripts/install-system-deps installs them)")
        return 1
    machine = Machine.sample()
    print(machine.describe())
    tmp = Path(tempfile.mkdtemp(prefix="shoal-bench-edge-"))
    script = tmp / "wrk.lua"
    script.write_text(WRK_SCRIPT)
    procs: list[subprocess.Popen[bytes]] = []
    tables: list[RouteTableServer] = []
    backend = free_port()
    try:
        procs.append(nginx_backend(tmp, backend))
        targets: dict[str, str] = {"direct": f"http://127.0.0.1:{backend}/"}
        port = free_port()
        procs.append(plain_haproxy(haproxy, tmp, port, backend))
        targets["haproxy"] = f"http://127.0.0.1:{port}/"
        port = free_port()
        procs.append(plain_haproxy_big(haproxy, tmp, port, backend, *BIG))
        targets["haproxy, big table"] = f"http://127.0.0.1:{port}/"
        port = free_port()
        (tmp / "proxy").mkdir()
        procs.append(nginx_proxy(tmp / "proxy", port, backend))
        targets["nginx"] = f"http://127.0.0.1:{port}/"
        for label, services, per in (("shoal edge", 1, 1), ("shoal edge, big table", *BIG)):
            tables.append(RouteTableServer(table(services, per, backend)))
            port = free_port()
            edge_dir = tmp / f"edge-{services}"
            edge_dir.mkdir()
            procs.append(shoal_edge(edge_dir, tables[-1].url, port, "edge"))
            targets[label] = f"http://127.0.0.1:{port}/"
        for (label, url), proc in zip(targets.items(), procs, strict=True):
            wait_answering(url, label, proc)
        print(f"{len(targets)} targets serve the backend's file; {ROUNDS} rounds of {SECONDS} s")
        results: dict[str, list[Result]] = {label: [] for label in targets}
        for n in range(ROUNDS):
            for label, url in targets.items():
                wrk(url, WARMUP_S, script)
                results[label].append(wrk(url, SECONDS, script))
                print(f"  round {n + 1} {label}: {_line(results[label][-1])}", flush=True)
    finally:
        for t in tables:
            t.stop()
        for p in procs:
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)
    report(results)
    if not machine.quiet:
        print(machine.caveat())
    return 0


def _line(r: Result) -> str:
    return f"{r.rps:,.0f} req/s, p50 {r.p50_ms:.2f} ms, p99 {r.p99_ms:.2f} ms, errors {r.errors}"


def report(results: dict[str, list[Result]]) -> None:
    def median(label: str) -> Result:
        rounds = sorted(results[label], key=lambda r: r.rps)
        return rounds[len(rounds) // 2]

    print(
        f"\nwrk -t{THREADS} -c{CONNECTIONS}, {SECONDS} s, the median of {ROUNDS} interleaved "
        f"rounds, {os.cpu_count()} CPUs; ratios against plain HAProxy serving the same "
        "servers (the big table's: a hand-written backend per app, the same 10 servers each)"
    )
    print(f"{'':24} {'req/s':>9} {'ratio':>6} {'p50':>9} {'p99':>9} {'ratio':>6} {'errors':>6}")
    verdicts, met = [], True
    for label, rounds in results.items():
        m = median(label)
        ref = median(REFERENCE.get(label, "haproxy"))
        errors = sum(r.errors for r in rounds)
        q_rps, q_p99 = m.rps / ref.rps, m.p99_ms / ref.p99_ms
        print(
            f"{label:24} {m.rps:9,.0f} {q_rps:5.2f}x {m.p50_ms:7.2f}ms {m.p99_ms:7.2f}ms "
            f"{q_p99:5.2f}x {errors:6}"
        )
        if label.startswith("shoal"):
            met = met and q_rps >= GOAL_RPS and q_p99 <= GOAL_P99 and not errors
            verdicts.append(f"{label}: {q_rps:.2f}x req/s, {q_p99:.2f}x p99")
    rates = {label: [r.rps for r in rs] for label, rs in results.items()}
    spread = ", ".join(
        f"{label} {statistics.pstdev(v) / statistics.mean(v):.0%}" for label, v in rates.items()
    )
    print(
        f"\nGoal: shoal >= {GOAL_RPS}x HAProxy's req/s with a p99 <= {GOAL_P99}x HAProxy's: "
        f"{'MET' if met else 'NOT MET'} ({'; '.join(verdicts)})\n(req/s spread across rounds: "
        f"{spread})"
    )


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted: servers stopped, temporary files removed")
        sys.exit(130)
