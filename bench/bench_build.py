"""Git builds: a cold build and a warm rebuild of the example app, against plain `pip install`.

    .venv/bin/python bench/bench_build.py [--cold N] [--warm N]

Needs root (the builds and the app run in sandboxes) and PyPI (the builds download Flask and
gunicorn as a user's would). It copies examples/hello/ (Flask served by gunicorn: app.py,
requirements.txt, Procfile) into a git repository in a temporary directory and starts its own
`shoal up` with its node agent there, on free loopback ports, polling git once an hour (and
the service does not deploy on push) so that only the bench's own calls make deployments. It
stops everything it started and removes the directory at the end, also on Ctrl-C or SIGTERM:
the app is deleted through the API, then whatever sandbox or spare network of the bench's
node is still there is destroyed through the driver, as `shoal up` might have gone first (it
is in the terminal's process group). It never asserts: it prints, and exits 0 unless the
platform could not be started or a build failed. Takes about 2.5 minutes, mostly PyPI.

What is measured, side by side
------------------------------
shoal cold build: the service (web, port 8000, fra, nano, 1 instance) is created with
    `skip_cache: true`, so its build starts from an empty cache (no saved virtualenv, no pip
    cache), then redeployed (POST /v1/services/{id}/redeploy) until there are N builds.
shoal warm rebuild: the definition is PATCHed to `skip_cache: false` (that deployment's build
    fills the cache and is not counted); then N times: commit a small change to app.py and
    redeploy. requirements.txt does not change, so the install step should be restored from
    the service's cache; the bench reads each build's log and says whether it was.
For each deployment, two times, polled every 50 ms:
    build stage: `provisioning_info.stages[0]` finished_at - started_at, from the clone to the
        API having the finished build (the steps' own times are broken down below the table);
    to HEALTHY: from the create/redeploy request to the deployment's status HEALTHY (build,
        then placement, the instance's start and its health check).
pip install (reference), interleaved with the builds above (one after each, once the
    replaced deployment has stopped): what the buildpack's install step runs,
    `python3 -m venv V && V/bin/pip install -r requirements.txt`, with /usr/bin/python3 (the
    node's stack, the one builds use), in the environment a build step gets (run_env with the
    Python buildpack's variables) but on the host: no sandbox, no 1-vCPU limit, and pip's
    cache in a directory of its own. The host's pip configuration (/etc/pip.conf, ~/.config/pip
    and PIP_FIND_LINKS point at local wheel mirrors) is left out, PIP_CONFIG_FILE=/dev/null,
    as the build sandbox has none: both download from PyPI.
    cold: a fresh empty pip cache and a new venv each time;
    warm: a pip cache filled by one uncounted run, a new venv each time.
The ratio is shoal's build stage (or to HEALTHY) over pip's time at p50, cold against cold and
warm against warm. Goal: a warm rebuild under 3 s, met when every warm build stage is.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import Machine
from tests.conftest import Shoal, start_shoal

from shoal.agent.builds import run_env
from shoal.core.buildpacks import INSTALL_PYTHON, Source, plan
from shoal.runtime.sandbox import SandboxDriver

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "hello"
PYTHON = "/usr/bin/python3"  # the node's stack: what build sandboxes run
REGION = "fra"
# What `shoal up` gives the agent of its first region (main._supervise_agent).
AGENT_POOL, AGENT_CGROUP = "100.72.0.0/16", f"shoal-{REGION}"
GOAL_S = 3.0
POLL_S = 0.05
SETTLE_S = 600.0  # one deployment, build included
REUSED = f"{INSTALL_PYTHON}: reusing the previous build's output"  # agent/builds.py says so
GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.test",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.test",
    "GIT_CONFIG_GLOBAL": "/dev/null",
}


class BenchFailed(Exception):
    """A deployment or a reference run failed: nothing more to measure."""


# ---------------------------------------------------------------------------- the app's repo


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), *args],
        env={**os.environ, **GIT_ENV},
        check=True,
        capture_output=True,
    )


def make_repo(repo: Path) -> None:
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns("__pycache__", ".venv"))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "the example app")


def touch_app(repo: Path, n: int) -> None:
    """A small change to the app's code, committed: the requirements stay as they are."""
    with open(repo / "app.py", "a") as f:
        f.write(f"\nREBUILD = {n}\n")
    git(repo, "commit", "-q", "-am", f"rebuild {n}")


def definition(repo: Path, skip_cache: bool) -> dict[str, Any]:
    return {
        "name": "web",
        "type": "WEB",
        "git": {"repository": str(repo), "branch": "main", "no_deploy_on_push": True},
        "ports": [{"port": 8000, "protocol": "http"}],
        "routes": [{"path": "/", "port": 8000}],
        "regions": [REGION],
        "instance_types": [{"type": "nano"}],
        "scalings": [{"min": 1, "max": 1}],
        "skip_cache": skip_cache,
    }


# ------------------------------------------------------------------------------ deployments


@dataclass
class Deployed:
    queued_s: float  # deployment created to its build started
    build_s: float  # the build stage, clone to finished
    healthy_s: float  # request to HEALTHY
    steps: dict[str, float]  # each build step's time
    reused: bool  # the install step was restored from the cache


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _span(item: dict[str, Any]) -> float:
    return (_when(item["finished_at"]) - _when(item["started_at"])).total_seconds()


def build_log(api: httpx.Client, dep_id: str) -> list[str]:
    params = {"deployment_id": dep_id, "type": "build", "order": "asc", "limit": "1000"}
    return [line["msg"] for line in api.get("/v1/streams/logs/query", params=params).json()["data"]]


def until_healthy(api: httpx.Client, dep_id: str, t0: float) -> Deployed:
    """Poll the deployment from the request made at `t0` until it is HEALTHY."""
    while time.monotonic() < t0 + SETTLE_S:
        dep = api.get(f"/v1/deployments/{dep_id}").json()["deployment"]
        if dep["status"] == "HEALTHY":
            healthy = time.monotonic() - t0
            break
        if dep["status"] in ("ERROR", "CANCELED", "STOPPED"):
            tail = "\n    ".join(build_log(api, dep_id)[-15:])
            raise BenchFailed(
                f"deployment {dep_id} ended {dep['status']}: {dep['messages']}\n    {tail}"
            )
        time.sleep(POLL_S)
    else:
        raise BenchFailed(f"deployment {dep_id} not HEALTHY after {SETTLE_S:.0f} s")
    [stage] = dep["provisioning_info"]["stages"]
    return Deployed(
        queued_s=(_when(stage["started_at"]) - _when(dep["created_at"])).total_seconds(),
        build_s=_span(stage),
        healthy_s=healthy,
        steps={s["name"]: _span(s) for s in stage["build_attempts"][0]["steps"]},
        reused=REUSED in build_log(api, dep_id),
    )


def until_stopped(api: httpx.Client, dep_id: str) -> None:
    """Let the replaced deployment's instance go before the reference runs (at most 30 s)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if api.get(f"/v1/deployments/{dep_id}").json()["deployment"]["status"] in (
            "STOPPED",
            "ERROR",
            "CANCELED",
        ):
            return
        time.sleep(0.2)


def redeploy(api: httpx.Client, service_id: str) -> Deployed:
    t0 = time.monotonic()
    reply = api.post(f"/v1/services/{service_id}/redeploy", json={})
    if reply.status_code != 200:
        raise BenchFailed(f"redeploy: {reply.status_code} {reply.text[:300]}")
    return until_healthy(api, reply.json()["deployment"]["id"], t0)


def latest(api: httpx.Client, service_id: str) -> str:
    return str(api.get(f"/v1/services/{service_id}").json()["service"]["latest_deployment_id"])


# -------------------------------------------------------------------------------- reference


def pip_env(home: Path, cache: Path) -> dict[str, str]:
    """What the buildpack's install step gets, pip's cache moved, the host's pip config off."""
    python = plan(Source(files=frozenset({"requirements.txt"})), "WEB", None, "app").env
    env = run_env(dict(python), {})
    env.update(PIP_CACHE_DIR=str(cache), PIP_CONFIG_FILE=os.devnull, HOME=str(home))
    env.pop("VIRTUAL_ENV", None)
    return env


def pip_install(work: Path, cache: Path) -> float:
    """`python3 -m venv V && V/bin/pip install -r requirements.txt` in a new venv, in s."""
    venv = work / "venv"
    shutil.rmtree(venv, ignore_errors=True)
    env = pip_env(work, cache)
    flags = ["--no-input", "--disable-pip-version-check"]
    t0 = time.monotonic()
    for cmd in (
        [PYTHON, "-m", "venv", str(venv)],
        [str(venv / "bin" / "pip"), "install", *flags, "-r", str(EXAMPLE / "requirements.txt")],
    ):
        done = subprocess.run(cmd, env=env, cwd=work, capture_output=True, text=True)
        if done.returncode != 0:
            raise BenchFailed(f"{' '.join(cmd)} failed:\n{(done.stdout + done.stderr)[-1500:]}")
    return time.monotonic() - t0


# ---------------------------------------------------------------------------------- cleanup


def stop_platform(shoal: Shoal | None, app_id: str | None, data: Path) -> None:
    """Delete the app (its instances go), stop `shoal up`, then destroy through the driver
    whatever sandbox, spare network or mount of this node is left, as `make clean` can't."""
    if shoal is not None:
        if app_id is not None and shoal.proc.poll() is None:
            with contextlib.suppress(httpx.HTTPError), shoal.client() as api:
                api.delete(f"/v1/apps/{app_id}")
                deadline = time.monotonic() + 60
                while api.get("/v1/apps").json()["count"] and time.monotonic() < deadline:
                    time.sleep(0.2)
        try:
            shoal.stop()
        except subprocess.TimeoutExpired:
            shoal.proc.kill()
            shoal.proc.wait()
    state = data / "nodes" / REGION / "runtime"
    for pid in _agents_of(data):  # a node agent left by a `shoal up` that did not stop it
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if state.is_dir():
        driver = SandboxDriver(state, address_pool=AGENT_POOL, cgroup_parent=AGENT_CGROUP)
        for leftover in driver.recover():
            driver.destroy(leftover.instance_id)
        # A driver that keeps no spare networks deletes the ready ones.
        SandboxDriver(state, address_pool=AGENT_POOL, cgroup_parent=AGENT_CGROUP, spare_networks=0)


def _agents_of(data: Path) -> list[int]:
    mine = f"{data}/nodes/".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            cmdline = (proc / "cmdline").read_bytes()
            if proc.name.isdigit() and b"\0agent\0" in cmdline and mine in cmdline:
                pids.append(int(proc.name))
    return pids


def mounts_under(root: Path) -> list[str]:
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return [p for p in points if p == str(root) or p.startswith(f"{root}/")]


# ----------------------------------------------------------------------------------- report


@dataclass
class Series:
    deployed: list[Deployed] = field(default_factory=list)
    pip: list[float] = field(default_factory=list)

    def build(self) -> list[float]:
        return [d.build_s for d in self.deployed]

    def healthy(self) -> list[float]:
        return [d.healthy_s for d in self.deployed]


def progress(label: str, d: Deployed, pip_s: float) -> None:
    print(
        f"{label}: queued {d.queued_s:.2f} s, build stage {d.build_s:.2f} s, to HEALTHY "
        f"{d.healthy_s:.2f} s, dependencies {'reused' if d.reused else 'installed'}; "
        f"pip install {pip_s:.2f} s",
        flush=True,
    )


def table(cold: Series, warm: Series) -> None:
    print(f"{'':42}{'p50':>8}{'max':>8}{'shoal/pip':>11}")
    print("-" * 69)
    rows = [
        ("shoal cold build: build stage", cold.build(), cold.pip),
        ("shoal cold build: create → HEALTHY", cold.healthy(), cold.pip),
        ("shoal warm rebuild: build stage", warm.build(), warm.pip),
        ("shoal warm rebuild: redeploy → HEALTHY", warm.healthy(), warm.pip),
        ("pip install cold (reference)", cold.pip, []),
        ("pip install warm (reference)", warm.pip, []),
    ]
    for label, values, ref in rows:
        if not values:
            print(f"{label:42}{'-':>8}{'-':>8}")
            continue
        p50 = statistics.median(values)
        ratio = f"{p50 / statistics.median(ref):.2f}x" if ref else ""
        print(f"{label:42}{p50:7.2f}s{max(values):7.2f}s{ratio:>11}".rstrip())


def breakdown(cold: Series, warm: Series) -> None:
    """Each build step's p50, and what the build stage and the way to HEALTHY add to them."""

    def p50(series: Series, part: Callable[[Deployed], float]) -> str:
        return f"{statistics.median(part(d) for d in series.deployed):8.2f}"

    names = list(dict.fromkeys(n for d in cold.deployed + warm.deployed for n in d.steps))
    parts: list[tuple[str, Callable[[Deployed], float]]] = [
        ("queued (created to the build's start)", lambda d: d.queued_s),
        *((f"step: {n}", lambda d, n=n: d.steps.get(n, 0.0)) for n in names),
        ("rest of the stage (plan, copies, cache)", lambda d: d.build_s - sum(d.steps.values())),
        ("after it (placement, start, health)", lambda d: d.healthy_s - d.queued_s - d.build_s),
    ]
    print(f"\nwhere the time goes, p50 (s){'':14}{'cold':>8}{'warm':>8}")
    for label, part in parts:
        print(f"  {label:40}{p50(cold, part)}{p50(warm, part)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cold", type=int, default=3, help="cold builds (and pip runs)")
    parser.add_argument("--warm", type=int, default=5, help="warm rebuilds (and pip runs)")
    args = parser.parse_args()
    if min(args.cold, args.warm) < 1:
        parser.error("--cold and --warm need at least one run each")
    if os.geteuid() != 0:
        print("bench_build needs root: builds and instances run in sandboxes")
        return 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    machine = Machine.sample()
    print(machine.describe())

    root = Path(tempfile.mkdtemp(prefix="shoal-bench-build-"))
    data, repo = root / "data", root / "repo"
    shoal: Shoal | None = None
    app_id: str | None = None
    cold, warm = Series(), Series()
    pip_cached = 0
    started = time.monotonic()
    try:
        make_repo(repo)
        try:
            shoal = start_shoal(
                data, None, "--git-poll-interval", "3600", "--local-git", agents=True
            )
        except RuntimeError as e:
            print(f"shoal up failed: {e}")
            return 1
        api = shoal.client()
        app_id = api.post("/v1/apps", json={"name": "bench"}).json()["app"]["id"]
        pip_cold, pip_warm = root / "pip-cold", root / "pip-warm"

        def reference(series: Series, cache: Path, replaced: str | None) -> None:
            if replaced is not None:
                until_stopped(api, replaced)
            series.pip.append(pip_install(root, cache))

        # Cold: created, then redeployed, each build from an empty cache.
        t0 = time.monotonic()
        reply = api.post(
            "/v1/services", json={"app_id": app_id, "definition": definition(repo, True)}
        )
        if reply.status_code != 200:
            raise BenchFailed(f"create: {reply.status_code} {reply.text[:300]}")
        service_id = reply.json()["service"]["id"]
        for n in range(args.cold):
            if n == 0:
                replaced = None
                d = until_healthy(api, reply.json()["service"]["latest_deployment_id"], t0)
            else:
                replaced = latest(api, service_id)
                d = redeploy(api, service_id)
            cold.deployed.append(d)
            shutil.rmtree(pip_cold, ignore_errors=True)  # pip starts from nothing too
            reference(cold, pip_cold, replaced)
            progress(f"cold {n + 1}/{args.cold}", d, cold.pip[-1])

        # Warm: the cache on; one build to fill it (not counted), then a change to the code.
        replaced = latest(api, service_id)
        t0 = time.monotonic()
        body = {"definition": definition(repo, False)}
        reply = api.patch(f"/v1/services/{service_id}", json=body)
        if reply.status_code != 200:
            raise BenchFailed(f"PATCH skip_cache false: {reply.status_code} {reply.text[:300]}")
        fill = until_healthy(api, latest(api, service_id), t0)
        reference(warm, pip_warm, replaced)
        warm.pip.clear()  # that run filled pip's cache
        pip_cached = sum(1 for f in pip_warm.rglob("*") if f.is_file())
        print(
            f"caches filled: build stage {fill.build_s:.2f} s, pip's cache {pip_cached} files "
            "(not counted)",
            flush=True,
        )
        for n in range(args.warm):
            replaced = latest(api, service_id)
            touch_app(repo, n + 1)
            d = redeploy(api, service_id)
            warm.deployed.append(d)
            reference(warm, pip_warm, replaced)
            progress(f"warm {n + 1}/{args.warm}", d, warm.pip[-1])
    except BenchFailed as e:
        print(f"bench stopped: {e}")
        return 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):  # let the clean-up finish
            signal.signal(sig, signal.SIG_IGN)
        stop_platform(shoal, app_id, data)
        left = mounts_under(root)
        shutil.rmtree(root, ignore_errors=True)
        if left:
            print(f"WARNING: still mounted after the run: {left}")

    print(
        f"\nexample app (examples/hello: Flask + gunicorn): {args.cold} cold builds and "
        f"{args.warm} warm rebuilds,\neach beside a plain pip install of its requirements (s); "
        "ratio: shoal / pip at p50,\ncold against cold, warm against warm"
    )
    table(cold, warm)
    breakdown(cold, warm)
    reused = sum(d.reused for d in warm.deployed)
    if reused == len(warm.deployed):
        print(f"\nevery warm rebuild ({reused}/{reused}) reused the installed dependencies")
    else:
        print(
            f"\nWARNING: {len(warm.deployed) - reused} of {len(warm.deployed)} warm rebuilds "
            f"did NOT reuse the installed dependencies (their logs lack {REUSED!r}): pip ran again"
        )
    if not pip_cached:
        print("NOTE: pip's cache stayed empty after the run meant to fill it, so 'pip install")
        print("warm' downloaded everything again, as cold did: pip keeps a download only when the")
        print("answer allows caching, and most likely PyPI's answers came without Cache-Control")
        print("headers (a proxy in between can strip them)")
    if any(d.reused for d in cold.deployed):
        print("WARNING: a cold build reused a cached install: skip_cache did not empty the cache")
    worst = max(warm.build(), default=float("inf"))
    print(
        f"Goal: warm rebuild under {GOAL_S:g} s: {'MET' if worst < GOAL_S else 'NOT MET'} "
        f"(build stage max {worst:.2f} s, p50 {statistics.median(warm.build()):.2f} s; "
        f"redeploy → HEALTHY p50 {statistics.median(warm.healthy()):.2f} s)"
    )
    print(f"(bench took {time.monotonic() - started:.0f} s)")
    if not machine.quiet:
        print(machine.caveat())
    return 0


if __name__ == "__main__":
    try:
        code = main()
    except KeyboardInterrupt:
        print("\ninterrupted: shoal stopped, its sandboxes destroyed, temporary files removed")
        code = 130
    sys.exit(code)
