"""Capacity, the last part of bench/bench_wake.py: how many sleeping services and running
instances one node holds, and the platform's own memory per instance.

On a fresh `shoal up` (its agent offering enough CPUs and memory to overcommit: see
SHOAL_NODE_CPUS in the README; each instance keeps its own limits) it creates
  1. SLEEPING services: busybox httpd images, `min: 0`, deep sleep after 1 s (each starts
     once, as a new deployment must, then sleeps: no process of it runs, its sandbox is
     kept on the node), in organizations of 100 services each, as on a node many tenants
     share;
  2. RUNNING instances: services of 10 instances each (min = max = 10), all HEALTHY;
checks that each running service answers through the edge and that sleeping ones still
wake, and measures after each step:
  - the platform's memory: the proportional set size (PSS, shared pages split between the
    processes sharing them) of `shoal up` and every process it started — API processes,
    the node agent, the edge, HAProxy — but not the instances' own processes;
  - the sandboxes' own processes (bwrap's two per instance, inside each instance's cgroup
    and charged to its memory limit), apart;
  - the machine's MemAvailable, whose drop also counts the kernel's share (namespaces, veth
    pairs, cgroups, scratch mounts, page cache) and the apps themselves: for the sleepers,
    what their kept sandboxes cost.
Goal (issue 6): 1,000 sleeping services and 200 running small instances on this machine, the
platform's memory under 2 MiB per instance.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from tests.conftest import Shoal, start_shoal
from tests.e2e.test_service_lifecycle import definition

PER_APP = 16  # the seed's limit of services per app
PER_SERVICE = 10  # instances of each running service
PER_TENANT = 100  # sleeping services of each organization
AWAKE = ["ALLOCATING", "STARTING", "HEALTHY", "UNHEALTHY", "STOPPING"]
INSTANCE_CGROUP = "/shoal-fra/"  # the agent's cgroup parent for region fra


@dataclass(frozen=True)
class Memory:
    platform_mib: float
    sandboxes_mib: float  # bwrap's own processes of every sandbox
    available_mib: float  # the machine's MemAvailable
    roles: dict[str, float]  # the platform's MiB by process: "up", "api", "agent", "haproxy"...

    def breakdown(self) -> str:
        return ", ".join(f"{role} {mib:.0f}" for role, mib in sorted(self.roles.items()))


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:  # gone meanwhile
        pass
    return 0


def _children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            out.setdefault(ppid, []).append(int(entry.name))
    return out


def _in_instance(pid: int) -> bool:
    try:
        return INSTANCE_CGROUP in Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return False


def _instance_processes() -> int:
    return sum(1 for p in filter(str.isdigit, os.listdir("/proc")) if _in_instance(int(p)))


def measure(root_pid: int) -> Memory:
    children = _children()
    tree, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    roles: dict[str, float] = {}
    for p in tree:
        if not _in_instance(p):
            roles[_role(p)] = roles.get(_role(p), 0.0) + _pss_kib(p) / 1024
    platform = sum(roles.values()) * 1024
    sandboxes = sum(
        _pss_kib(p)
        for p in map(int, filter(str.isdigit, os.listdir("/proc")))
        if _in_instance(p) and _comm(p) == "bwrap"
    )
    return Memory(platform / 1024, sandboxes / 1024, _available_kib() / 1024, roles)


def _role(pid: int) -> str:
    """The `shoal` subcommand a process runs, else its command's name."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "gone"
    if len(argv) > 3 and argv[1:3] == [b"-m", b"shoal"]:
        return argv[3].decode()
    return _comm(pid)


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _available_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def _definition(image: str, name: str, scaling: dict[str, Any]) -> dict[str, Any]:
    """A nano web service of `image` in Frankfurt (httpd on 8000, checked at /index.html)."""
    return {**definition(image), "name": name, "scalings": [scaling]}


def _count(api: httpx.Client, path: str, statuses: list[str]) -> int:
    params = [("limit", "1"), *(("statuses", s) for s in statuses)]
    r = api.get(path, params=params)
    r.raise_for_status()
    return int(r.json()["count"])


def _no_errors(api: httpx.Client) -> None:
    r = api.get("/v1/deployments", params={"statuses": "ERROR", "limit": 5})
    if failed := r.json()["deployments"]:
        raise RuntimeError(f"deployments failed: {[d['messages'] for d in failed]}")


def _wait(what: str, done: Any, timeout: float = 1800) -> None:
    deadline, said = time.monotonic() + timeout, 0.0
    while not (state := done())[0]:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: {state[1]}")
        if time.monotonic() - said > 15:
            print(f"    {what}: {state[1]}", flush=True)
            said = time.monotonic()
        time.sleep(1)


def _services(
    api: httpx.Client, image: str, prefix: str, count: int, scaling: dict[str, Any]
) -> list[tuple[str, str]]:
    """`count` services in apps of up to PER_APP: (app id, host) of each app."""
    apps = []
    for a in range(math.ceil(count / PER_APP)):
        r = api.post("/v1/apps", json={"name": f"{prefix}{a}"})
        r.raise_for_status()
        app_id = r.json()["app"]["id"]
        host = r.json()["app"]["domains"][0]["name"]
        apps.append((app_id, host))
        for n in range(min(PER_APP, count - a * PER_APP)):
            body = {"app_id": app_id, "definition": _definition(image, f"s{n}", scaling)}
            if n:  # each service its own route of the app's domain
                body["definition"]["routes"] = [{"path": f"/s{n}", "port": 8000}]
            r = api.post("/v1/services", json=body)
            r.raise_for_status()
    return apps


def _status(edge: str, host: str) -> int | str:
    try:
        return httpx.get(edge + "/", headers={"Host": host}, timeout=60).status_code
    except httpx.HTTPError as e:
        return type(e).__name__


def _first_200(edge: str, host: str, deadline: float) -> int | str:
    """200 once the edge answers so for `host`, else the last status before `deadline`."""
    while (status := _status(edge, host)) != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    return status


def _tenants(shoal: Shoal, api: httpx.Client, count: int) -> list[httpx.Client]:
    """`count` organizations (besides the admin's), a client with a token of each."""
    clients = []
    for n in range(count):
        org = api.post("/v1/organizations", json={"name": f"tenant{n}"})
        org.raise_for_status()
        body = {"name": "bench", "type": "ORGANIZATION"}
        body["organization_id"] = org.json()["organization"]["id"]
        cred = api.post("/v1/credentials", json=body)
        cred.raise_for_status()
        clients.append(shoal.client(cred.json()["credential"]["token"]))
    return clients


def _clean(clients: list[httpx.Client]) -> None:
    """Delete every app of every organization and wait until their instances are gone:
    sandboxes outlive the platform, which stops next."""
    for api in clients:
        for app in api.get("/v1/apps", params={"limit": 100}).json()["apps"]:
            api.delete(f"/v1/apps/{app['id']}")

    def deleted() -> tuple[bool, str]:
        left = sum(api.get("/v1/apps").json()["count"] for api in clients)
        return left == 0, f"{left} apps left"

    _wait("deleting", deleted, 900)


def capacity(root: Path, image: str, sleeping: int, running: int) -> list[str]:
    """Runs the steps; the lines to print. The sleeping services belong to organizations of
    PER_TENANT services each (an organization's private mesh holds about 500 web services)."""
    os.environ["SHOAL_NODE_CPUS"] = str(running * 0.25 + 8)  # nano: 0.25 vCPU, 256 MB
    os.environ["SHOAL_NODE_MEMORY_MB"] = str(running * 256 + 16 * 1024)
    shoal = start_shoal(root / "capacity", None, agents=True)
    api = shoal.client()
    clients = [api]
    try:
        time.sleep(5)  # every process up and settled
        empty = measure(shoal.proc.pid)
        tenants = _tenants(shoal, api, math.ceil(sleeping / PER_TENANT))
        clients += tenants
        print(f"  capacity: {sleeping} services to sleep, in {len(tenants)} organizations")
        asleep = {"min": 0, "max": 1, "targets": [{"sleep_idle_delay": {"deep_sleep_value": 1}}]}
        t0 = time.monotonic()
        sleepers = []
        for n, tenant in enumerate(tenants):
            count = min(PER_TENANT, sleeping - n * PER_TENANT)
            sleepers += [
                (tenant, host) for _, host in _services(tenant, image, "nap", count, asleep)
            ]

        def all_asleep() -> tuple[bool, str]:
            for tenant in tenants:
                _no_errors(tenant)
            slept = sum(_count(c, "/v1/deployments", ["SLEEPING"]) for c in tenants)
            awake = sum(_count(c, "/v1/instances", AWAKE) for c in tenants)
            running = _instance_processes()
            done = slept == sleeping and awake == 0 and running == 0
            return done, f"{slept} sleeping, {awake} instances awake, {running} processes"

        _wait("sleeping", all_asleep)
        slept_in = time.monotonic() - t0
        with_sleepers = measure(shoal.proc.pid)

        print(f"  capacity: {running} instances to run", flush=True)
        t0 = time.monotonic()
        every = {"min": PER_SERVICE, "max": PER_SERVICE}
        runners = _services(api, image, "run", math.ceil(running / PER_SERVICE), every)

        def all_running() -> tuple[bool, str]:
            _no_errors(api)
            healthy = _count(api, "/v1/instances", ["HEALTHY"])
            return healthy >= running, f"{healthy} healthy"

        _wait("running", all_running)
        ran_in = time.monotonic() - t0
        time.sleep(5)
        loaded = measure(shoal.proc.pid)
        # The edge takes new routes with a reload of HAProxy: the time it takes to serve them.
        t0 = time.monotonic()
        answers = [_first_200(shoal.edge, host, t0 + 120) for _, host in runners]
        routed_in = time.monotonic() - t0
        woken = [
            _status(shoal.edge, host) for _, host in sleepers[:: max(1, len(sleepers) // 5)][:5]
        ]
    finally:
        try:
            _clean(clients)
        finally:
            shoal.stop()

    per_sleeper = (with_sleepers.platform_mib - empty.platform_mib) / sleeping
    per_instance = (loaded.platform_mib - with_sleepers.platform_mib) / running
    overall = (loaded.platform_mib - empty.platform_mib) / running
    machine = (with_sleepers.available_mib - loaded.available_mib) / running
    kept = (empty.available_mib - with_sleepers.available_mib) / sleeping
    sandbox = loaded.sandboxes_mib / running
    held = answers.count(200) == len(answers) and woken.count(200) == len(woken)
    met = held and overall < 2
    return [
        f"Capacity, one node (overcommitted: SHOAL_NODE_CPUS {os.environ['SHOAL_NODE_CPUS']}, "
        f"SHOAL_NODE_MEMORY_MB {os.environ['SHOAL_NODE_MEMORY_MB']}):",
        f"  {sleeping} services asleep in {slept_in:.0f} s (each started once, then slept); "
        f"{running} instances HEALTHY in {ran_in:.0f} s",
        f"  through the edge: the running apps answered {answers} within {routed_in:.1f} s "
        f"of being HEALTHY; sleeping ones, woken: {woken}",
        f"  platform memory (PSS): {empty.platform_mib:.0f} MiB empty, "
        f"{with_sleepers.platform_mib:.0f} MiB with the sleepers, "
        f"{loaded.platform_mib:.0f} MiB with the running instances too",
        f"  by process (MiB): empty: {empty.breakdown()}; with the sleepers: "
        f"{with_sleepers.breakdown()}; loaded: {loaded.breakdown()}",
        f"  per sleeping service {per_sleeper * 1024:.0f} KiB, and the machine's "
        f"MemAvailable {kept * 1024:.0f} KiB (its kept sandbox); per running instance "
        f"{per_instance:.2f} MiB; all of it over the running instances {overall:.2f} MiB",
        f"  beside it, per running instance: the sandbox's bwrap processes {sandbox:.2f} MiB "
        f"(in the instance's cgroup), the machine's MemAvailable {machine:.1f} MiB "
        f"(kernel and app included)",
        f"Goal: {sleeping} sleeping services and {running} running instances, platform under "
        f"2 MiB per instance: {'met' if met else 'NOT MET'} ({overall:.2f} MiB)",
    ]
