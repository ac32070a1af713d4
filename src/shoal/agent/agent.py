"""The node agent: pulls its node's assignments, runs them, reports back. Only over the API.

Level-triggered: every round compares the assignments with the instances it runs and acts
on the difference. Sandboxes outlive the agent; a restarted agent adopts the ones still
assigned (no restart) and removes the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from shoal.agent.builds import Builds
from shoal.agent.builds import Node as BuildNode
from shoal.agent.exec_sessions import ExecSessions
from shoal.agent.instance import InstanceTask, write_hosts
from shoal.agent.logs import LogFollower
from shoal.agent.utilisation import Sampler
from shoal.agent.waker import Waker
from shoal.build.image import ImageStore
from shoal.client.errors import ApiError, ApiUnreachable
from shoal.client.node import NodeClient
from shoal.core.assignment import (
    Assignment,
    BuildReport,
    InstanceReport,
    LogLine,
    NodeHello,
    ReportBatch,
)
from shoal.core.enums import InstanceStatus
from shoal.core.metrics import ResourceSample
from shoal.core.rollout import ASLEEP, Desired
from shoal.runtime.driver import Driver, SandboxState

log = logging.getLogger(__name__)
POLL_WAIT_S = 2.0
FLUSH_S = 0.5
SAMPLE_S = 1.0  # how often each instance's CPU and memory are sampled
MAX_SAMPLES = 10_000  # kept while the API cannot take them
_FINAL = (InstanceStatus.STOPPED, InstanceStatus.ERROR)
LOST_MESSAGE = "Instance stopped: its sandbox was lost while it slept"


class Agent:
    def __init__(
        self,
        client: NodeClient,
        driver: Driver,
        images: ImageStore,
        hello: NodeHello,
        state_dir: Path,
        waker: Path | None = None,
        waker_group: int | None = None,
    ) -> None:
        """`waker`: the Unix socket where an edge on this machine asks for a wake (None: the
        control plane's wake only); `waker_group`: the group besides this user's that may
        ask (the edge's HAProxy, once it dropped root)."""
        self.client = client
        self.driver = driver
        self.images = images
        self.hello = hello
        state_dir.mkdir(parents=True, exist_ok=True)
        self.follower = LogFollower(state_dir / "log-offsets.json")
        self.tasks: dict[str, InstanceTask] = {}
        self._ended: set[str] = set()
        self.execs = ExecSessions(client, driver)
        self.builds = Builds(
            BuildNode(driver, state_dir, self.report_build, self.emit, self._archive)
        )
        self.state_dir = state_dir
        self._running: dict[str, asyncio.Task[None]] = {}
        self._pending: dict[str, InstanceReport] = {}
        self._pending_builds: dict[str, BuildReport] = {}
        self._lines: list[LogLine] = []
        self._flush = asyncio.Event()
        self.sampler = Sampler(driver)
        self._used: list[ResourceSample] = []  # instances' use of their type, not sent yet
        self._changes: set[asyncio.Task[Any]] = set()  # instances falling asleep or waking
        self.node_id = ""
        self.waker = Waker(waker, lambda: self.tasks, waker_group) if waker else None

    # -- reports -------------------------------------------------------------------------------

    def report(
        self,
        a: Assignment,
        status: InstanceStatus,
        message: str,
        started_at: datetime | None,
        address: str | None,
        urgent: bool = True,
    ) -> None:
        now = datetime.now(UTC)
        self._pending[a.instance_id] = InstanceReport(
            instance_id=a.instance_id,
            status=status,
            message=message,
            started_at=started_at,
            terminated_at=now if status in _FINAL else None,
            address=address,
        )
        if message:
            self._lines.append(
                LogLine(instance_id=a.instance_id, stream="koyeb", msg=message, created_at=now)
            )
        if urgent:
            self._flush.set()

    async def _archive(self, archive_id: str) -> bytes:
        return await self.client.archive(self.node_id, archive_id)

    def report_build(self, report: BuildReport) -> None:
        self._pending_builds[report.deployment_id] = report
        self._flush.set()

    def emit(self, lines: list[LogLine]) -> None:
        self._lines += lines
        self._flush.set()

    def _collect_logs(self, instance_id: str) -> None:
        with contextlib.suppress(Exception):  # a sandbox being destroyed has no files left
            files = self.driver.logs(instance_id)
            for stream, path in (("stdout", files.stdout), ("stderr", files.stderr)):
                self._lines += self.follower.read(instance_id, stream, path)

    async def _flush_loop(self) -> None:
        next_sample = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush.wait(), FLUSH_S)
            self._flush.clear()
            for instance_id, task in list(self.tasks.items()):
                # Not a sleeper's: frozen or stopped, it writes nothing (what it wrote last
                # is read once it wakes, or ends).
                if not (task.frozen or task.stopped):
                    self._collect_logs(instance_id)
            if time.monotonic() >= next_sample:
                next_sample = time.monotonic() + SAMPLE_S
                used = await asyncio.to_thread(self.sampler.sample, dict(self.tasks), time.time())
                self._used = (self._used + used)[-MAX_SAMPLES:]
            if not (self._pending or self._lines or self._pending_builds or self._used):
                continue
            batch = ReportBatch(
                instances=list(self._pending.values()),
                logs=self._lines[:5000],
                builds=list(self._pending_builds.values()),
                resources=self._used,
            )
            try:
                await self.client.report(self.node_id, batch)
            except (ApiError, ApiUnreachable) as e:
                log.warning("report failed, will retry: %s", e)
                await asyncio.sleep(1)
                continue
            for r in batch.instances:
                if self._pending.get(r.instance_id) is r:
                    del self._pending[r.instance_id]
            for b in batch.builds:
                if self._pending_builds.get(b.deployment_id) is b:
                    del self._pending_builds[b.deployment_id]
            del self._lines[: len(batch.logs)]
            self._used = self._used[len(batch.resources) :]
            self.follower.save()

    # -- the loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        while not self.node_id:
            try:
                self.node_id = await self.client.hello(self.hello)
            except (ApiError, ApiUnreachable) as e:
                log.warning("cannot register yet: %s", e)
                await asyncio.sleep(1)
        adopted = {s.instance_id: s for s in await asyncio.to_thread(self.driver.recover)}
        log.info(
            "node %s (%s) up; %d sandboxes found", self.node_id, self.hello.region, len(adopted)
        )
        flusher = asyncio.create_task(self._flush_loop())
        waking = asyncio.create_task(self.waker.serve()) if self.waker else None
        known = ""
        async with httpx.AsyncClient() as http:
            try:
                while True:
                    try:
                        listing, known = await self.client.assignments(
                            self.node_id, known, POLL_WAIT_S
                        )
                    except (ApiError, ApiUnreachable) as e:
                        log.warning("%s", e)
                        await asyncio.sleep(1)
                        continue
                    self.execs.start(listing.exec_sessions)
                    self.builds.sync(listing.builds)
                    await self._reconcile(listing.assignments, adopted, http)
                    adopted = {}
            finally:
                flusher.cancel()
                if waking is not None:
                    waking.cancel()
                for change in self._changes:
                    change.cancel()
                self.execs.cancel()
                self.builds.cancel()
                for t in self._running.values():
                    t.cancel()

    async def _reconcile(
        self,
        assignments: list[Assignment],
        adopted: dict[str, SandboxState],
        http: httpx.AsyncClient,
    ) -> None:
        listed = {a.instance_id for a in assignments}
        hosts = {  # the names of the private mesh, as they are now: one file an app
            a.app_id: a.mesh.hosts
            for a in assignments
            if a.mesh is not None and a.instance_id in self.tasks
        }
        for app_id, text in hosts.items():
            write_hosts(self.state_dir, app_id, text)
        for a in assignments:
            task = self.tasks.get(a.instance_id)
            if a.desired == Desired.STOP:
                if task is not None:
                    task.request_stop()
                elif a.instance_id in adopted:
                    self._spawn(a, adopted[a.instance_id], http).request_stop()
                else:
                    self.report(a, InstanceStatus.STOPPED, "Instance stopped.", None, None)
                continue
            if task is None and a.status not in _FINAL and a.instance_id not in self._ended:
                if a.desired == Desired.DEEP_SLEEP and a.instance_id not in adopted:
                    # Its sandbox is gone (the node lost it): it cannot start again in place,
                    # so it ends, and a wake starts a new one.
                    self.report(a, InstanceStatus.STOPPED, LOST_MESSAGE, None, None)
                    self._ended.add(a.instance_id)
                    continue
                task = self._spawn(a, adopted.get(a.instance_id), http)
            if task is None:
                continue
            # Sleep (freeze, or stop in place) or wake; one woken by a request stays awake a
            # while even if the control plane, not told yet, still wants it asleep.
            deep = a.desired == Desired.DEEP_SLEEP
            if a.desired in ASLEEP and not task.recently_woken:
                if not task.asleep or (deep and not task.stopped):
                    self._changes.add(asyncio.create_task(task.sleep(deep)))
            elif a.desired == Desired.RUN and task.asleep:
                self._changes.add(asyncio.create_task(task.wake()))
        self._changes = {c for c in self._changes if not c.done()}
        self._ended &= listed  # the API lists them no more: their end has reached it
        for instance_id, task in self.tasks.items():
            if instance_id not in listed:
                task.request_stop()
        for instance_id in set(adopted) - listed:
            await asyncio.to_thread(self.driver.destroy, instance_id)

    async def _prune_images(self) -> None:
        """Remove the images no instance of this node runs (its image store is its own).
        Skipped while an instance is still pulling: its image is not known to be kept yet."""
        roots = [task.rootfs for task in self.tasks.values()]  # (on the loop, which adds tasks)
        if any(root is None for root in roots):
            return
        await asyncio.to_thread(self._prune, [root for root in roots if root is not None])

    def _prune(self, roots: list[Path]) -> None:
        keep = {self.images.digest_of(root) for root in roots}
        self.images.prune({d for d in keep if d})

    def _spawn(
        self, a: Assignment, adopted: SandboxState | None, http: httpx.AsyncClient
    ) -> InstanceTask:
        task = InstanceTask(a, self.driver, self.images, self.report, http, adopted, self.state_dir)
        self.tasks[a.instance_id] = task

        async def life() -> None:
            try:
                try:
                    await task.run()
                except asyncio.CancelledError:
                    raise  # the agent is stopping: the sandbox lives on, to be adopted
                except Exception:
                    log.exception("instance %s", a.instance_id)
                    self.report(a, InstanceStatus.ERROR, "Internal error on the node", None, None)
                self._collect_logs(a.instance_id)
                await asyncio.to_thread(self.driver.destroy, a.instance_id)
                self.tasks.pop(a.instance_id, None)
                await self._prune_images()
                self.follower.forget(a.instance_id)
                # An instance runs once: its end may not have reached the API yet when the
                # next assignments arrive, and a replacement is a new instance.
                self._ended.add(a.instance_id)
            finally:
                self.tasks.pop(a.instance_id, None)
                self._running.pop(a.instance_id, None)
                self._flush.set()

        self._running[a.instance_id] = asyncio.create_task(life())
        return task
