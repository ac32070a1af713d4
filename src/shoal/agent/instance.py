"""One instance's life on a node: pull, start, watch (exit and health checks), stop."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from asyncio import FIRST_COMPLETED
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx

from shoal.agent.builds import run_env, sandbox_for
from shoal.agent.probes import describe_failure, probe
from shoal.build.image import Image, ImageStore, process_for
from shoal.build.image_errors import ImageError
from shoal.build.registry_auth import credentials_from_secret
from shoal.client.waker import WAKE_S
from shoal.core import health
from shoal.core.assignment import Assignment
from shoal.core.definition import DockerSource, HealthCheck
from shoal.core.enums import InstanceStatus
from shoal.core.process import ImageConfig, ProcessError
from shoal.runtime.driver import (
    Bind,
    Driver,
    Phase,
    Resources,
    SandboxError,
    SandboxSpec,
    SandboxState,
)

log = logging.getLogger(__name__)
STOP_GRACE_S = 5.0
# A serving instance asked to stop keeps running this long after it said STOPPING (which takes
# it out of the edge's route table) before it is stopped: the edge's servers follow the table
# within a second, and requests it sent before finish.
DRAIN_S = 3.0
WATCH_S = 0.5  # how often a running instance's process is looked at
# Light sleep: an instance said SLEEPING (which takes it out of the edge's pools) is frozen
# this long after, so that the requests sent to it before finish.
SLEEP_DRAIN_S = 1.0
# An instance woken by a request directly (agent/waker.py) stays awake this long even while
# the control plane, not told yet, still lists it as asleep.
WAKE_GRACE_S = 10.0
# Start-up CPU boost (as Cloud Run's): until an instance is first healthy, and for BOOST_S
# at most, its CPU quota is at least BOOST_VCPU. A start is mostly the app's own CPU work
# (a Python app's imports): a nano's quarter of a core makes it two to four times slower.
BOOST_VCPU = 1.0
BOOST_S = 10.0
DEEP_SLEEP_MESSAGE = "Instance is sleeping (stopped: the next request starts it again)"

# (instance, status, message, started_at, address, urgent) -> None; not urgent: it goes
# with the next regular report
Report = Callable[[Assignment, InstanceStatus, str, datetime | None, str | None, bool], None]


def exit_message(state: SandboxState, a: Assignment) -> str:
    if state.oom_killed:
        return (
            f"Instance ran out of memory ({a.memory_mb}MB on {a.instance_type}) and was "
            "killed. Consider a larger instance type."
        )
    code = state.exit_code
    if code is None:
        return "Application stopped unexpectedly (its exit code is unknown)"
    if code < 0:
        return f"Application was killed by signal {-code}"
    return f"Application exited with code {code}. This usually indicates an application failure"


class InstanceTask:
    def __init__(
        self,
        a: Assignment,
        driver: Driver,
        images: ImageStore,
        report: Report,
        http: httpx.AsyncClient,
        adopted: SandboxState | None,
        state_dir: Path,
    ) -> None:
        self.a = a
        self.state_dir = state_dir
        self.driver = driver
        self.images = images
        self.report = report
        self.http = http
        self.adopted = adopted
        self.stop_requested = asyncio.Event()
        self.started_at: datetime | None = None
        self.address: str | None = None
        # The image root it runs from, once known: its image must stay while it runs.
        self.rootfs: Path | None = adopted.rootfs if adopted else None
        self.status = InstanceStatus.STARTING  # as its health checks last said
        self.running = False  # it has its sandbox (started, or adopted), running or asleep
        self.asleep = False  # said SLEEPING: frozen, stopped, or about to be
        self.frozen = False  # light sleep
        self.stopped = False  # deep sleep: its command stopped, its sandbox kept
        self.woken_at = -WAKE_GRACE_S  # (monotonic)
        self.healthy = asyncio.Event()  # set while it serves
        self.ended = asyncio.Event()
        self._freezer = asyncio.Lock()  # one sleep or wake at a time
        self._woken = asyncio.Event()  # a deep sleeper is asked to start again
        self._look = asyncio.Event()  # its watch looks again now (stopped, or asked to)
        self._quiet = False  # its reports wait for the next regular one (a wake in progress)
        self._made: SandboxSpec | None = None  # the spec it was started with
        self._boosted_until: float | None = None  # (monotonic) while its CPU is boosted

    def request_stop(self) -> None:
        self.stop_requested.set()
        self._look.set()

    def _say(self, status: InstanceStatus, message: str, urgent: bool | None = None) -> None:
        urgent = not self._quiet if urgent is None else urgent
        self.report(self.a, status, message, self.started_at, self.address, urgent)

    async def run(self) -> None:
        """Until the instance has ended; its sandbox is left for the caller to destroy."""
        try:
            state = self.adopted or await self._start()
            trusted = self.adopted is not None  # its last reported status still holds
            if trusted:
                self._boosted_until = 0.0  # the agent may have stopped before it unboosted
            deep = trusted and self.a.status == InstanceStatus.SLEEPING
            if deep and state is not None and state.phase is not Phase.RUNNING:
                # Adopted in deep sleep: it waits for a wake, or a stop, as it was left.
                self.address, self.running = state.address, True
                self.asleep = self.stopped = True
                trusted = False
                state = await self._deep_sleep()
            while state is not None:
                self.address = state.address
                if state.started_at:
                    self.started_at = datetime.fromtimestamp(state.started_at, UTC)
                self.running = True
                if state.frozen:  # adopted in light sleep
                    self.asleep = self.frozen = True
                    self._say(InstanceStatus.SLEEPING, "Instance is sleeping")
                ended = await self._watch(state, trusted)
                trusted = False
                state = None if ended else await self._deep_sleep()
        finally:
            self.running = False
            self.healthy.clear()
            self.ended.set()

    @property
    def recently_woken(self) -> bool:
        return time.monotonic() - self.woken_at < WAKE_GRACE_S

    async def sleep(self, deep: bool = False) -> None:
        """Say SLEEPING, let the requests sent before finish, then freeze it (light sleep) or
        stop its command and keep its sandbox (deep sleep; a frozen one too)."""
        async with self._freezer:
            if not self.running or self.stop_requested.is_set() or self.stopped:
                return
            if not self.asleep:
                if self.status != InstanceStatus.HEALTHY:
                    return  # not before it is healthy: its start-up checks would run out
                self.asleep = True
                self.healthy.clear()
                self._say(InstanceStatus.SLEEPING, "Instance is sleeping")
                draining = True
            elif not (deep and self.frozen):
                return  # asleep already, or on its way to light sleep (deep comes after)
            else:
                draining = False
        if draining:
            await asyncio.sleep(SLEEP_DRAIN_S)
        async with self._freezer:
            if not self.asleep or self.stopped or self.stop_requested.is_set():
                return  # woken, or stopping, meanwhile
            if self.frozen and not deep:
                return
            try:
                if deep:
                    self.stopped = True  # before it stops: its watch takes the end as asleep
                    await asyncio.to_thread(self.driver.stop, self.a.instance_id, STOP_GRACE_S)
                else:
                    await asyncio.to_thread(self.driver.freeze, self.a.instance_id)
            except (SandboxError, OSError, TimeoutError) as e:
                log.warning("instance %s could not sleep: %s", self.a.instance_id, e)
                self.asleep = self.stopped = False  # it runs: it says so (and is metered)
                self.healthy.set()
                self._say(self.status, f"Instance could not sleep: {e}")
                return
            self.frozen = not deep
            if deep:
                self._woken.clear()  # a wake from before this sleep is not for it
                self._look.set()  # its watch ends now, ready for a wake
                self._say(InstanceStatus.SLEEPING, DEEP_SLEEP_MESSAGE)

    async def wake(self, urgent: bool = True) -> bool:
        """Thaw it and say it is back (as healthy as before), or start a deep sleeper's
        command again and wait until it is healthy; whether it serves. Not `urgent`: woken
        for a request (agent/waker.py), the control plane hears of it with the next regular
        report, not in the middle of the request's wait."""
        async with self._freezer:
            if not self.running or self.stop_requested.is_set():
                return False
            self.woken_at = time.monotonic()
            if self.stopped:
                self._quiet = not urgent
                self._woken.set()
            elif self.asleep:
                if self.frozen:
                    try:
                        await asyncio.to_thread(self.driver.thaw, self.a.instance_id)
                    except (SandboxError, OSError) as e:
                        log.warning("instance %s could not be thawed: %s", self.a.instance_id, e)
                        return False
                    self.frozen = False
                self.asleep = False
                if self.status == InstanceStatus.HEALTHY:
                    self.healthy.set()
                self._say(self.status, "Instance woke up", urgent)
        if not self.healthy.is_set():  # started again, or still starting
            await _first(self.healthy, self.ended, timeout=WAKE_S)
            self._quiet = False
            self.woken_at = time.monotonic()
        return self.healthy.is_set()

    async def _deep_sleep(self) -> SandboxState | None:
        """Stopped in place until woken (then its state running again) or stopped (None)."""
        await _first(self._woken, self.stop_requested)
        if self.stop_requested.is_set():
            self._say(InstanceStatus.STOPPED, "Instance stopped.", urgent=True)
            return None
        async with self._freezer:  # a wake meanwhile waits for it to run, then for it to serve
            self._woken.clear()
            try:
                spec = self._made = self._made or await self._spec()
                state = await asyncio.to_thread(self.driver.resume, self._boost(spec))
            except (ImageError, ProcessError, SandboxError, OSError, ValueError) as e:
                self._say(InstanceStatus.ERROR, str(e), urgent=True)
                return None
            self.stopped = self.asleep = False
            self.started_at = datetime.now(UTC)
            self._say(InstanceStatus.STARTING, "Instance is waking up")
        return state

    def _boost(self, spec: SandboxSpec) -> SandboxSpec:
        """`spec` with the start-up CPU boost, undone by `_unboost`."""
        if spec.resources.vcpu >= BOOST_VCPU:
            return spec
        self._boosted_until = time.monotonic() + BOOST_S
        return dataclasses.replace(
            spec, resources=dataclasses.replace(spec.resources, vcpu=BOOST_VCPU)
        )

    async def _unboost(self) -> None:
        if self._boosted_until is None:
            return
        self._boosted_until = None
        try:
            await asyncio.to_thread(self.driver.limit, self.a.instance_id, self._resources())
        except (SandboxError, OSError) as e:
            log.warning("instance %s: its CPU boost could not be undone: %s", self.a.instance_id, e)
            self._boosted_until = time.monotonic() + 1.0  # again in a second

    async def _spec(self) -> SandboxSpec:
        """The sandbox, joined to its organization's private mesh when it has one."""
        spec = await self._base_spec()
        mesh = self.a.mesh
        if mesh is None:
            return spec
        hosts = write_hosts(self.state_dir, self.a.app_id, mesh.hosts)
        binds = (*spec.binds, Bind(hosts, "/etc/hosts"))
        return dataclasses.replace(spec, binds=binds, mesh=mesh.block)

    def _resources(self) -> Resources:
        return Resources(vcpu=self.a.vcpu, memory_mb=self.a.memory_mb, disk_mb=self.a.disk_mb)

    async def _base_spec(self) -> SandboxSpec:
        """A git build's sandbox on the node's stack, or an image's: built from a Dockerfile,
        or pulled (first)."""
        a = self.a
        resources = self._resources()
        ports = tuple(p.port for p in a.ports if p.port)
        if a.artifact is not None and a.artifact.kind == "buildpack":
            spec = sandbox_for(
                a.instance_id,
                self.state_dir,
                Path(a.artifact.path),
                ["/bin/sh", "-c", a.artifact.run_command],
                run_env(a.artifact.env, a.env),
                resources,
                hostname=a.hostname,
                ports=ports,
            )
            self.rootfs = spec.rootfs
            return spec
        if a.artifact is not None:
            root = Path(a.artifact.path)
            config = ImageConfig.from_oci(json.loads((root / "config.json").read_bytes()))
            image = Image(digest="", rootfs=root / "rootfs", config=config)
            source = a.artifact.docker or DockerSource()
        else:
            image = self._kept_image() or await self._pull()
            source = a.docker
        self.rootfs = image.rootfs
        proc = process_for(image, source, a.env)
        return SandboxSpec(
            instance_id=a.instance_id,
            rootfs=image.rootfs,
            argv=proc.argv,
            env=proc.env,
            resources=resources,
            workdir=proc.workdir,
            user=proc.user,
            hostname=a.hostname,
            ports=ports,
        )

    def _kept_image(self) -> Image | None:
        """The image an adopted instance runs from, while the node has it: the same one
        again, even if its tag has moved since."""
        digest = self.images.digest_of(self.rootfs) if self.rootfs else None
        return self.images.get(digest) if digest else None

    async def _pull(self) -> Image:
        a = self.a
        self._say(InstanceStatus.ALLOCATING, f"Pulling image {a.docker.image}")
        creds = None
        if a.registry_secret is not None:
            creds = credentials_from_secret(a.registry_secret.kind, a.registry_secret.config)
        return await asyncio.to_thread(self.images.pull, a.docker.image or "", creds)

    async def _start(self) -> SandboxState | None:
        try:
            spec = await self._spec()
            if self.stop_requested.is_set():
                self._say(InstanceStatus.STOPPED, "Instance stopped before it started")
                return None
            self._made = spec
            state = await asyncio.to_thread(self.driver.start, self._boost(spec))
        except (ImageError, ProcessError, SandboxError, OSError, ValueError) as e:
            self._say(InstanceStatus.ERROR, str(e))
            return None
        self.started_at = datetime.now(UTC)
        self.address = state.address
        self._say(InstanceStatus.STARTING, "Instance is starting")
        return state

    async def _watch(self, state: SandboxState, adopted: bool) -> bool:
        """Until it ends or is stopped (True), or is put in deep sleep (False)."""
        a = self.a
        checks = list(a.health_checks)
        policy = _policy(checks)
        started = state.started_at or time.time()
        # An adopted instance that was healthy stays so unless its checks now fail.
        serving = (InstanceStatus.HEALTHY, InstanceStatus.SLEEPING)  # (asleep once healthy)
        was_healthy = adopted and a.status in serving
        probes = [
            health.Probe(started_at=started, ever_passed=was_healthy, passing=was_healthy)
            for _ in checks
        ]
        self.status = InstanceStatus.HEALTHY if was_healthy else InstanceStatus.STARTING
        if was_healthy and not self.asleep:
            self.healthy.set()
        while True:
            current = await asyncio.to_thread(self.driver.inspect, a.instance_id)
            if current.phase != Phase.RUNNING:
                if self.stopped:
                    return False
                self._say(InstanceStatus.ERROR, exit_message(current, a), urgent=True)
                return True
            if self._boosted_until is not None and time.monotonic() > self._boosted_until:
                await self._unboost()
            if self.asleep:  # no check of a frozen instance: it would fail
                if await self._stopped(WATCH_S):
                    return True
                continue
            now = time.time()
            for n, check in enumerate(checks):
                if now >= health.next_probe_at(policy, probes[n]):
                    ok, why = await probe(check, current.address or "127.0.0.1", self.http)
                    error = describe_failure(check, why) if not ok else ""
                    probes[n] = health.record(policy, probes[n], ok, error, time.time())
            verdict = health.verdict(policy, probes)
            failing = next((p.last_error for p in probes if p.last_error), "")
            if verdict in (health.Verdict.FAILED, health.Verdict.RESTART):
                await asyncio.to_thread(self.driver.stop, a.instance_id, STOP_GRACE_S)
                prefix = (
                    ""
                    if verdict == health.Verdict.FAILED
                    else f"Restarted after {policy.restart_limit} failed health checks: "
                )
                self._say(InstanceStatus.ERROR, prefix + failing, urgent=True)
                return True
            new = {
                health.Verdict.HEALTHY: InstanceStatus.HEALTHY,
                health.Verdict.UNHEALTHY: InstanceStatus.UNHEALTHY,
            }.get(verdict, self.status)
            if new != self.status and not self.asleep:
                self.status = new
                healthy = new == InstanceStatus.HEALTHY
                if healthy:
                    self.healthy.set()
                    await self._unboost()
                else:
                    self.healthy.clear()
                self._say(new, "Instance is healthy" if healthy else failing)
                self._quiet = False
            wait = min(
                [WATCH_S]
                + [max(0.0, health.next_probe_at(policy, p) - time.time()) for p in probes]
            )
            if await self._stopped(wait):
                return True

    async def _stopped(self, wait: float) -> bool:
        """Stop it if asked to within `wait` seconds (or until its watch should look
        again); whether it was."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._look.wait(), wait)
        self._look.clear()
        if not self.stop_requested.is_set():
            return False
        async with self._freezer:  # not while it freezes or thaws
            serving = self.status == InstanceStatus.HEALTHY and not self.asleep
            self._say(InstanceStatus.STOPPING, "Instance is stopping")
        if serving and self.a.ports:
            # The edge takes no new request to it from now; those in flight finish.
            await asyncio.sleep(DRAIN_S)
        await asyncio.to_thread(self.driver.stop, self.a.instance_id, STOP_GRACE_S)
        self._say(InstanceStatus.STOPPED, "Instance stopped.")
        return True


async def _first(*events: asyncio.Event, timeout: float | None = None) -> None:
    """Until one of `events` is set (or `timeout` seconds have passed)."""
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


def write_hosts(state_dir: Path, app_id: str, text: str) -> Path:
    """The /etc/hosts of the node's instances of an app, rewritten in place when it changes
    (each instance has it bound: a new file would not reach them)."""
    path = state_dir / "mesh" / f"{app_id}.hosts"
    path.parent.mkdir(exist_ok=True)
    if not path.exists() or path.read_text() != text:
        with path.open("a+") as f:
            f.seek(0)
            f.truncate()
            f.write(text)
    return path


def _policy(checks: list[HealthCheck]) -> health.Policy:
    """One policy per instance: Koyeb's checks of one service share their timings in practice;
    where they differ, the most patient values win."""
    if not checks:
        return health.Policy(grace_period=0, interval=60, timeout=5, restart_limit=3)
    return health.Policy(
        grace_period=max(c.grace_period or 0 for c in checks),
        interval=min(c.interval or 60 for c in checks),
        timeout=max(c.timeout or 5 for c in checks),
        restart_limit=max(c.restart_limit or 3 for c in checks),
    )
