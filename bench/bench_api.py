"""API benchmark: shoal's control-plane API on SQLite beside a raw Starlette "hello" reference.

Run: `.venv/bin/python bench/bench_api.py` (or `make bench`). One run, about 3.5 minutes (at most
about 4.5), all traffic to 127.0.0.1. It starts its own servers on free ports in a temporary
directory, and stops and removes them at the end (also on Ctrl-C or SIGTERM). It never asserts:
it prints, and exits 0 unless a server could not be started or seeded at all.

What is measured, side by side
------------------------------
(a) reference: a Starlette app with one async endpoint answering `{"hello": "world"}`, served
    by uvicorn as `shoal up` serves its API (`shoal.main.up`): the same
    `uvicorn.Config(app, host, port, log_level="warning", access_log=False)` driven by
    `asyncio.run(server.serve())`, in its own process. Note what that means: httptools parses
    HTTP, but the event loop is the stdlib's asyncio loop, not uvloop (uvicorn installs uvloop
    only in `Server.run()`, which shoal does not call); the reference does the same on purpose.
    The reference is the floor this machine, this Python and this server stack give; the
    ratios shoal/reference say what shoal adds on top.
(b) shoal: a real `shoal up` (SQLite, fresh data dir), the admin token from DATA_DIR/admin-token,
    seeded with 2 apps and 20 services (10 each: the per-app limit is 16), run twice:
      - `--api-processes 1`: one uvicorn process on the API's address, as the reference;
      - the default, one API process per CPU (2 here): HAProxy on the API's address spreads
        reads over the processes (the first one also runs the control loops and takes the
        writes). The goal is judged on this one, what `shoal up` runs.
    Then
      GET  /v1/apps/{id}            one app by id (auth + one indexed lookup + render)
      GET  /v1/services             the default page: 10 of the 20 services (auth + count +
                                    page + render), as a client that sets no limit gets it
      POST /v1/apps                 writes, a unique name per request (a wrk Lua script)
    Every request, to the reference too, carries the same `Authorization: Bearer` header.

Throughput (closed loop): `wrk -t1 -c32` for 8 s after a 2 s warm-up; req/s counts only 2xx
answers. One wrk thread, not two: each server is one Python process (one core at most, the
GIL) on a 2-core machine, and a second wrk thread would mostly take CPU from the server under
test. wrk's own latency figures are printed too, but they are closed-loop numbers.

Latency (open loop, constant rate): reads at 1,000 req/s (the goal's rate) and at 100 req/s
(latency with no queueing, a number that stays meaningful while shoal cannot sustain 1,000/s),
10 s each over 32 keep-alive connections. A closed-loop tool (wrk, hey, ab) sends the next
request only when the last one answered, so when the server stalls it stops sending and the
requests that should have gone out during the stall are never timed: coordinated omission,
which hides exactly the queueing a p99 goal is about. wrk2 (wrk at a constant rate) and vegeta
are packaged neither in Debian 12 nor on PyPI, and hey's `-q` throttles each worker in a closed
loop, so the bench has its own generator (`_open_loop`), the method wrk2 uses:
  * request k of the run has an intended send time t0 + k/rate and goes on connection k mod 32,
    so each connection has its own fixed schedule (every 32 ms at 1,000/s) and the union is
    one request every millisecond;
  * a connection sends its next request at its intended time, or at once if it is already late
    (the previous answer came after that time);
  * latency = answer time - INTENDED send time: the wait behind a slow answer is counted, as a
    client arriving at that moment would have seen it. The service time (answer - actual send)
    is printed beside it;
  * a server that cannot keep up falls behind its schedule: 5 s past the schedule's end the
    generator stops sending, and every request not answered by then counts as lost, with an
    unbounded latency in the percentiles (shown as "overload"); "got" is the rate of 2xx
    answers actually achieved. This keeps the run bounded;
  * it is Python (asyncio on uvloop, raw HTTP/1.1 with pre-built request bytes, Content-Length
    framed answers) on the same 2 cores: its own overhead and timer granularity (~1 ms) are in
    the reference's numbers too, which is what the ratios are for.
CPU/req is the server's user+system CPU time (/proc/PID/stat, all threads) during the 1,000 req/s
run divided by the requests it answered: the cost of one request where it runs. For shoal, the
server is `shoal up` with its API processes and HAProxy (not its node agents); it includes the
reconciler's periodic resync.

The goal reported against: "p99 under 20 ms at 1,000 requests/s for reads on this 2-core
machine", met when both reads answer all 1,000/s, with no error, and p99 < 20 ms. Other work on
the machine skews every number: the bench samples how busy the CPUs are before it starts and
says so.

`--profile DIR` (needs `.venv/bin/pip install py-spy`) also records shoal with py-spy during the
two 1,000 req/s read runs (py-spy's raw collapsed-stack format, one file per run, for
flamegraph tools); sampling slows shoal, so the numbers of such a run are not the ones to quote.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import Machine

HOST = "127.0.0.1"
WARMUP_S = 2
CLOSED_S = 8
CLOSED_CONNECTIONS = 32
WRK_THREADS = 1
OPEN_RATE = 1000  # req/s offered in the constant-rate runs
OPEN_S = 10
LIGHT_RATE = 100  # the same runs at a tenth of the rate: latency when nothing queues
LIGHT_S = 10
OPEN_CONNECTIONS = 32
OPEN_GRACE_S = 5  # past the schedule's end, stop sending; unanswered requests count as lost
GOAL_P99_MS = 20.0
SERVICES = 20
SERVICES_PER_APP = 10
LIST_PATH = "/v1/services"  # the default page: 10 of the 20, count 20, has_next

# The reference: what `shoal.main.up` does with uvicorn, around a one-route Starlette app.
REFERENCE_SERVER = """
import asyncio, sys
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def hello(request):
    return JSONResponse({"hello": "world"})

app = Starlette(routes=[Route("/", hello)])
server = uvicorn.Server(uvicorn.Config(app, host=sys.argv[1], port=int(sys.argv[2]),
                                       log_level="warning", access_log=False))
asyncio.run(server.serve())
"""

# wrk: one request shape per run; POST bodies get a unique app name per request. `done` prints
# one JSON line that the bench reads (wrk's own report goes to stdout before it).
WRK_SCRIPT = r"""
wrk.method = "{method}"
wrk.path = "{path}"
wrk.headers["Authorization"] = "Bearer {token}"
wrk.headers["Content-Type"] = "application/json"
local unique = {unique}
local prefix = "{prefix}"
local counter = 0
local n = 0
function setup(thread)
  n = n + 1
  thread:set("tid", n)
end
if unique then
  request = function()
    counter = counter + 1
    local body = string.format('{{"name":"%s-%d-%d"}}', prefix, tid, counter)
    return wrk.format(nil, nil, nil, body)
  end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) and of its descendants that
    serve the API (HAProxy, API readers), not the node agents and their instances."""
    total = 0.0
    for p in (pid, *_descendants(pid)):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if b"shoal\0agent" not in (stat.parent / "cmdline").read_bytes():
                children.setdefault(parent, []).append(int(stat.parent.name))
        except (OSError, ValueError):
            continue
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


# --------------------------------------------------------------------------------- servers


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def _spawn(name: str, cmd: list[str], port: int, log: Path, health: str) -> Server:
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = Server(name, proc, port, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(server.url + health, timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"{name} did not answer within 30 s:\n{log.read_text()[-2000:]}")


def start_reference(tmp: Path) -> Server:
    port = free_port()
    return _spawn(
        "reference",
        [sys.executable, "-c", REFERENCE_SERVER, HOST, str(port)],
        port,
        tmp / "reference.log",
        "/",
    )


def start_shoal(tmp: Path, processes: int | None) -> Server:
    """`shoal up` with `processes` API processes (None: its default) on a fresh data dir."""
    shutil.rmtree(tmp / "data", ignore_errors=True)
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "shoal",
        "up",
        "--data-dir",
        str(tmp / "data"),
        "--api-listen",
        f"{HOST}:{port}",
        "--edge-listen",
        f"{HOST}:{free_port()}",
        *(["--api-processes", str(processes)] if processes else []),
    ]
    return _spawn("shoal", cmd, port, tmp / "shoal.log", "/health")


def _api_processes(shoal: Server) -> int:
    """How many API processes `shoal up` runs: itself and its readers."""
    readers = [
        p
        for p in _descendants(shoal.proc.pid)
        if b"api-reader" in Path(f"/proc/{p}/cmdline").read_bytes()
    ]
    return 1 + len(readers)


def seed(shoal: Server, token: str) -> str:
    """Two apps with 10 services each; returns the first app's id."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=shoal.url, headers=headers, timeout=30) as c:
        app_ids = []
        for a in range((SERVICES + SERVICES_PER_APP - 1) // SERVICES_PER_APP):
            r = c.post("/v1/apps", json={"name": f"bench-{a}"})
            r.raise_for_status()
            app_ids.append(r.json()["app"]["id"])
        for i in range(SERVICES):
            body = {
                "app_id": app_ids[i // SERVICES_PER_APP],
                "definition": {"name": f"svc-{i}", "docker": {"image": "nginx:alpine"}},
            }
            r = c.post("/v1/services", json=body)
            if r.status_code != 200:
                raise RuntimeError(f"seeding service {i}: {r.status_code} {r.text[:300]}")
        for path in (f"/v1/apps/{app_ids[0]}", LIST_PATH):
            r = c.get(path)
            if r.status_code != 200:
                raise RuntimeError(f"GET {path}: {r.status_code} {r.text[:300]}")
        listed = c.get(LIST_PATH).json()
        if listed.get("count") != SERVICES:
            raise RuntimeError(f"expected {SERVICES} services, counted {listed.get('count')}")
    time.sleep(1)  # let the reconciler's hints for the new services settle
    return app_ids[0]


# ------------------------------------------------------------------------------- load: wrk


@dataclass
class Closed:
    rps: float  # 2xx answers per second
    errors: int
    p50_ms: float
    p99_ms: float
    note: str = ""


def run_wrk(
    url: str,
    path: str,
    token: str,
    seconds: int,
    tmp: Path,
    method: str = "GET",
    unique: bool = False,
) -> Closed:
    prefix = "w" + secrets.token_hex(3)
    script = tmp / f"wrk-{prefix}.lua"
    script.write_text(
        WRK_SCRIPT.format(
            method=method,
            path=path,
            token=token,
            unique="true" if unique else "false",
            prefix=prefix,
        )
    )
    cmd = [
        "wrk",
        f"-t{WRK_THREADS}",
        f"-c{CLOSED_CONNECTIONS}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        url,
    ]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30).stdout
    except subprocess.TimeoutExpired:
        return Closed(0, 0, 0, 0, "wrk timed out")
    m = re.search(r"^WRKJSON (\{.*\})$", out, re.M)
    if not m:
        return Closed(0, 0, 0, 0, "no wrk summary: " + out[-300:])
    r = json.loads(m.group(1))
    # wrk counts non-2xx/3xx answers in `status` (and in `requests`).
    errors = r["connect"] + r["read"] + r["write"] + r["timeout"] + r["status"]
    ok = r["requests"] - r["status"]
    return Closed(ok / (r["duration_us"] / 1e6), errors, r["p50_us"] / 1e3, r["p99_us"] / 1e3)


# ------------------------------------------------------------------- load: constant rate


@dataclass
class Open:
    offered: float
    achieved: float
    sent: int
    ok: int
    errors: int  # connection errors, time-outs, non-2xx answers
    lost: int  # not sent or not answered before the run's end (overload)
    p50_ms: float  # answer - intended send time
    p99_ms: float
    max_ms: float
    svc_p50_ms: float  # answer - actual send time
    svc_p99_ms: float
    cpu_ms_per_req: float
    statuses: dict[int, int] = field(default_factory=dict)


def _pct(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))
    return sorted_values[i]


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    i = lower.find(b"\r\ncontent-length:")
    if i >= 0:
        end = lower.index(b"\r\n", i + 2)
        await reader.readexactly(int(lower[i + 17 : end]))
    elif b"transfer-encoding: chunked" in lower:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


@dataclass
class _Samples:
    latencies: list[float] = field(default_factory=list)  # answer - intended send, 2xx only
    service: list[float] = field(default_factory=list)  # answer - actual send, 2xx only
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0  # connection errors and time-outs
    elapsed: float = 0.0  # first intended send to last answer


async def _open_loop(
    port: int, request: bytes, rate: float, seconds: float, connections: int
) -> _Samples:
    total = int(rate * seconds)
    out = _Samples()
    conns = [await asyncio.open_connection(HOST, port) for _ in range(connections)]
    t0 = time.perf_counter() + 0.05
    stop_sending = t0 + seconds + OPEN_GRACE_S  # an overloaded server must not stretch the run

    async def worker(k: int) -> None:
        reader, writer = conns[k]
        for i in range(k, total, connections):
            intended = t0 + i / rate
            if time.perf_counter() > stop_sending:
                break
            delay = intended - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent = time.perf_counter()
            try:
                writer.write(request)
                status = await asyncio.wait_for(_read_response(reader), 10)
            except (
                OSError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                TimeoutError,
                ValueError,
            ):
                out.errors += 1
                writer.close()
                try:
                    reader, writer = await asyncio.open_connection(HOST, port)
                except OSError:
                    return
                continue
            done = time.perf_counter()
            out.elapsed = max(out.elapsed, done - t0)
            out.statuses[status] = out.statuses.get(status, 0) + 1
            if 200 <= status < 300:
                out.latencies.append(done - intended)
                out.service.append(done - sent)
        writer.close()

    tasks = [asyncio.create_task(worker(k)) for k in range(connections)]
    try:  # answers still missing at the end count as lost
        await asyncio.wait(tasks, timeout=seconds + OPEN_GRACE_S + 2)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for _, writer in conns:
            writer.close()
    return out


def open_loop(server: Server, path: str, token: str, rate: float, seconds: float) -> Open:
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {HOST}:{server.port}\r\n"
        f"Authorization: Bearer {token}\r\nAccept: application/json\r\n\r\n"
    ).encode()
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings uvloop
        factory = asyncio.new_event_loop
    cpu0 = cpu_seconds(server.proc.pid)
    with asyncio.Runner(loop_factory=factory) as runner:
        r = runner.run(_open_loop(server.port, request, rate, seconds, OPEN_CONNECTIONS))
    cpu = cpu_seconds(server.proc.pid) - cpu0
    total = int(rate * seconds)
    ok = len(r.latencies)
    answered = sum(r.statuses.values())
    # A request never answered in time has an unbounded latency: it counts in the percentiles.
    lat = sorted(r.latencies) + [float("inf")] * (total - ok)
    svc = sorted(r.service)
    return Open(
        offered=rate,
        achieved=ok / r.elapsed if r.elapsed > 0 else 0.0,
        sent=total,
        ok=ok,
        errors=r.errors + answered - ok,
        lost=total - answered - r.errors,
        p50_ms=_pct(lat, 50) * 1e3,
        p99_ms=_pct(lat, 99) * 1e3,
        max_ms=lat[-1] * 1e3,
        svc_p50_ms=_pct(svc, 50) * 1e3,
        svc_p99_ms=_pct(svc, 99) * 1e3,
        cpu_ms_per_req=cpu * 1e3 / max(1, answered),
        statuses=r.statuses,
    )


# ---------------------------------------------------------------------------------- report


@dataclass
class Row:
    label: str
    closed: Closed | None = None
    open: Open | None = None  # at OPEN_RATE
    light: Open | None = None  # at LIGHT_RATE


def _ms(v: float) -> str:
    return "overload" if v == float("inf") else f"{v:.2f} ms"


def _describe(label: str, c: Closed | None = None, o: Open | None = None) -> None:
    if c is not None:
        print(
            f"  {label}: closed loop {c.rps:,.0f} req/s, errors {c.errors}, wrk p50 "
            f"{c.p50_ms:.2f} ms p99 {c.p99_ms:.2f} ms (closed loop: coordinated omission) "
            f"{c.note}".rstrip(),
            flush=True,
        )
    if o is not None:
        print(
            f"  {label}: {o.offered:,.0f}/s offered, {o.achieved:,.0f}/s answered 2xx "
            f"({o.ok}/{o.sent}, errors {o.errors}, lost {o.lost}, statuses {o.statuses}); "
            f"latency from intended send p50 {_ms(o.p50_ms)} p99 {_ms(o.p99_ms)} "
            f"max {_ms(o.max_ms)}; service time p50 {_ms(o.svc_p50_ms)} p99 "
            f"{_ms(o.svc_p99_ms)}; server CPU {o.cpu_ms_per_req:.3f} ms/req",
            flush=True,
        )


def _ratio(value: float | None, ref: float | None) -> str:
    if value is None or not ref or value != value or ref != ref or value == float("inf"):
        return ""
    q = value / ref
    return f"{q:.1f}x" if q >= 9.95 else f"{q:.2f}x"


def table(ref: Row, rows: list[Row]) -> None:
    k, light = f"{OPEN_RATE / 1000:g}k", f"{LIGHT_RATE:g}"
    cols = [
        ("max req/s", 9),
        ("ratio", 6),
        (f"got@{k}/s", 9),
        (f"p50@{k}/s", 10),
        ("ratio", 6),
        (f"p99@{k}/s", 10),
        ("ratio", 6),
        (f"p99@{light}/s", 10),
        ("ratio", 6),
        ("CPU/req", 8),
        ("ratio", 6),
    ]
    head = f"{'':34} " + " ".join(f"{name:>{w}}" for name, w in cols)
    print(head)
    print("-" * len(head))
    for row in [ref, *rows]:
        base = Row("") if row is ref else ref  # no ratios on the reference's own row
        c, o, li = row.closed, row.open, row.light
        bc, bo, bl = base.closed, base.open, base.light
        cells = [
            f"{c.rps:,.0f}" if c else "-",
            _ratio(c and c.rps, bc and bc.rps),
            f"{o.achieved:,.0f}" if o else "-",
            _ms(o.p50_ms) if o else "-",
            _ratio(o and o.p50_ms, bo and bo.p50_ms),
            _ms(o.p99_ms) if o else "-",
            _ratio(o and o.p99_ms, bo and bo.p99_ms),
            _ms(li.p99_ms) if li else "-",
            _ratio(li and li.p99_ms, bl and bl.p99_ms),
            f"{o.cpu_ms_per_req:.2f} ms" if o else "-",
            _ratio(o and o.cpu_ms_per_req, bo and bo.cpu_ms_per_req),
        ]
        line = " ".join(f"{v:>{w}}" for v, (_, w) in zip(cells, cols, strict=True))
        print(f"{row.label:34} {line}")


# ------------------------------------------------------------------------------------ main


def _profile(pid: int, out: Path, seconds: int, name: str) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("  (py-spy not installed: pip install py-spy)")
        return None
    out.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            spy,
            "record",
            "-p",
            str(pid),
            "-d",
            str(seconds),
            "-r",
            "200",
            "-f",
            "raw",
            "--nonblocking",
            "-o",
            str(out / f"{name}.txt"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--profile", type=Path, help="record shoal with py-spy into this dir")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    have_wrk = shutil.which("wrk") is not None
    if not have_wrk:
        print(
            "wrk is not installed (scripts/install-system-deps installs it): "
            "closed-loop throughput is skipped"
        )
    machine = Machine.sample()
    print(machine.describe())

    tmp = Path(tempfile.mkdtemp(prefix="shoal-bench-"))
    servers: list[Server] = []
    rows: list[Row] = []
    ref = Row("starlette hello (reference)")
    started = time.monotonic()

    def measure_read(row: Row, server: Server, path: str, token: str, name: str) -> None:
        if have_wrk:
            run_wrk(server.url, path, token, WARMUP_S, tmp)
            row.closed = run_wrk(server.url, path, token, CLOSED_S, tmp)
            _describe(row.label, c=row.closed)
        row.light = open_loop(server, path, token, LIGHT_RATE, LIGHT_S)
        _describe(row.label, o=row.light)
        spy = None
        if args.profile and server.name == "shoal":
            spy = _profile(server.proc.pid, args.profile, OPEN_S + 1, name)
        row.open = open_loop(server, path, token, OPEN_RATE, OPEN_S)
        if spy is not None:
            spy.wait(timeout=60)
        _describe(row.label, o=row.open)

    try:
        # (a) the reference
        try:
            reference = start_reference(tmp)
        except RuntimeError as e:
            print(f"reference server failed: {e}")
            return 1
        servers.append(reference)
        token = "shoal_" + secrets.token_urlsafe(32)  # same header size as shoal's requests
        measure_read(ref, reference, "/", token, "reference")
        reference.stop()

        # (b) shoal, in one API process, then as `shoal up` runs by default
        for processes, tag in ((1, "1 proc"), (None, "default")):
            try:
                shoal = start_shoal(tmp, processes)
            except RuntimeError as e:
                print(f"shoal up failed: {e}")
                return 1
            servers.append(shoal)
            try:
                token = (tmp / "data" / "admin-token").read_text().strip()
                app_id = seed(shoal, token)
            except (RuntimeError, OSError, httpx.HTTPError) as e:
                print(f"seeding shoal failed: {e}")
                return 1
            if processes is None:
                tag = f"{_api_processes(shoal)} procs"
            for label, path, name in (
                (f"shoal[{tag}] GET /v1/apps/{{id}}", f"/v1/apps/{app_id}", "get-app"),
                (f"shoal[{tag}] GET /v1/services", LIST_PATH, "list-services"),
            ):
                rows.append(Row(label))
                measure_read(rows[-1], shoal, path, token, f"{name}-{tag.replace(' ', '-')}")
            if processes == 1:
                shoal.stop()  # not to take CPU from the next one
        writes = Row(f"shoal[{tag}] POST /v1/apps")
        if have_wrk:
            run_wrk(shoal.url, "/v1/apps", token, WARMUP_S, tmp, "POST", unique=True)
            writes.closed = run_wrk(
                shoal.url, "/v1/apps", token, CLOSED_S, tmp, "POST", unique=True
            )
            _describe(writes.label, c=writes.closed)
        rows.append(writes)
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print()
    print(
        f"shoal API on SQLite vs a Starlette hello app, same uvicorn settings, "
        f"{os.cpu_count()} CPUs; ratio = shoal / reference"
    )
    print(
        f"  max req/s: wrk -t{WRK_THREADS} -c{CLOSED_CONNECTIONS}, {CLOSED_S} s, 2xx answers "
        f"only (writes: throughput only)"
    )
    print(
        f"  got, p50, p99 @{OPEN_RATE / 1000:g}k/s: open loop at a constant {OPEN_RATE:,} req/s "
        f"for {OPEN_S} s on {OPEN_CONNECTIONS} keep-alive connections; latency from the "
        f"intended send time"
    )
    print(
        f"  p99@{LIGHT_RATE:g}/s: the same at {LIGHT_RATE:g} req/s; CPU/req: the server's CPU "
        f"time per answer at {OPEN_RATE:,} req/s"
    )
    table(ref, rows)
    verdicts = []
    met = True
    for row in rows:
        o = row.open
        if o is None or "[1 proc]" in row.label:  # judged as `shoal up` runs by default
            continue
        short = o.achieved < 0.98 * o.offered
        met = met and o.p99_ms < GOAL_P99_MS and not short and not o.errors
        verdicts.append(
            f"{row.label.removeprefix('shoal ')} p99 {_ms(o.p99_ms)}"
            + (f", answers only {o.achieved:,.0f}/s" if short else "")
            + (f", {o.errors} errors" if o.errors else "")
        )
    print(
        f"\nGoal: p99 under {GOAL_P99_MS:g} ms at {OPEN_RATE:,} requests/s for reads: "
        f"{'MET' if met else 'NOT MET'} ({'; '.join(verdicts)})"
    )
    if not machine.quiet:
        print(machine.caveat())
    print(f"(bench took {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("\ninterrupted: servers stopped, temporary files removed")
        sys.exit(130)
