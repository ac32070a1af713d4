"""Builds a node runs for git and archive deployments: fetch the source (a clone, or the
uploaded archive), build it with a buildpack or its Dockerfile in sandboxes, report.

Each build step runs in its own sandbox on the node's stack (the host's userland, read-only),
with the checkout at /workspace (writable), the service's dependency cache at /cache, its
own network namespace with outbound access only (the host and other sandboxes unreachable),
and the limits below. Nothing of the platform (its data dir, other services' builds or
secrets) is mounted in. A step whose outputs (a virtualenv, node_modules) depend only on
files that did not change since the service's previous build is restored from the cache
instead of run again. The artifact is the finished workspace, run read-only at /workspace.

A Dockerfile is built by buildah (build/dockerfile.py) in one such sandbox, privileged as
buildah needs root, which runs each RUN step chrooted into the image being built, without
CAP_SYS_CHROOT, in the sandbox's namespaces (so still no platform file, no host network):
its base images are pulled on the host first, its image becomes the artifact.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
import shutil
import tarfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from shoal.agent.logs import LogFollower
from shoal.build import dockerfile
from shoal.build.git import GitError, checkout
from shoal.build.image_errors import ImageError
from shoal.client.errors import ApiError, ApiUnreachable
from shoal.core.assignment import Artifact, BuildJob, BuildReport, BuildStep, LogLine
from shoal.core.buildpacks import BuildRefused, Plan, Source, Step, plan
from shoal.core.definition import DockerBuilder, DockerSource, GitSource
from shoal.core.dockerfile import DockerfileError, base_images
from shoal.core.enums import BuildStatus
from shoal.runtime.driver import Bind, Driver, Phase, Resources, SandboxError, SandboxSpec
from shoal.runtime.stack import stack_binds, stack_root

log = logging.getLogger(__name__)
Fetch = Callable[[str], Awaitable[bytes]]  # an uploaded archive's bytes, by id
BUILD_TIMEOUT_S = 15 * 60.0  # the whole build
BUILD_RESOURCES = Resources(vcpu=1.0, memory_mb=2048, disk_mb=4096, pids=1024)
STACK_PATH = "/workspace/.venv/bin:/usr/local/bin:/usr/bin:/bin"
_POLL_S = 0.1


class BuildFailed(Exception):
    """The build cannot go on; the message is what the user sees."""


def run_env(plan_env: dict[str, str], user_env: dict[str, str]) -> dict[str, str]:
    """What build steps and the built app see: the buildpack's variables, then the user's."""
    return {"PATH": STACK_PATH, "HOME": "/tmp", "LANG": "C.UTF-8", **plan_env, **user_env}


def sandbox_for(
    instance_id: str,
    state_dir: Path,
    workspace: Path,
    argv: list[str],
    env: dict[str, str],
    resources: Resources,
    *,
    writable: bool = False,
    cache: Path | None = None,
    egress: bool = False,
    hostname: str = "",
    ports: tuple[int, ...] = (),
    privileged: bool = False,
) -> SandboxSpec:
    """A sandbox on the node's stack with `workspace` at /workspace: a build step's
    (writable, with the cache and outbound network; privileged for a Dockerfile's, with /sys
    and a /run and /var/tmp of the cache's for buildah) or a built app's (read-only)."""
    binds = [*stack_binds(), Bind(workspace, "/workspace", writable=writable)]
    if cache is not None:
        binds.append(Bind(cache, "/cache", writable=True))
    if privileged and cache is not None:
        binds.append(Bind(Path("/sys"), "/sys"))
        for target in ("/run", "/var/tmp"):
            scratch = cache / ".buildah" / target.strip("/").replace("/", "-")
            scratch.mkdir(parents=True, exist_ok=True)
            binds.append(Bind(scratch, target, writable=True))
    return SandboxSpec(
        instance_id=instance_id,
        rootfs=stack_root(state_dir),
        argv=argv,
        env=env,
        resources=resources,
        workdir="/workspace",
        hostname=hostname,
        ports=ports,
        binds=tuple(binds),
        egress=egress,
        privileged=privileged,
    )


@dataclass(frozen=True)
class Node:
    """What builds use of the node: its sandboxes, its state, and the way to the API."""

    driver: Driver
    state_dir: Path
    report: Callable[[BuildReport], None]
    emit: Callable[[list[LogLine]], None]
    fetch: Fetch


class Build:
    """One deployment's build, from clone to report."""

    def __init__(self, job: BuildJob, node: Node) -> None:
        self.job = job
        self.node = node
        self.driver = node.driver
        self.state_dir = state_dir = node.state_dir
        self.work = state_dir / "builds" / job.deployment_id
        # Mounted writable in build steps: the agent only ever deletes it (never reads it).
        self.cache = state_dir / "build-cache" / job.service_id
        # Saved step outputs: the agent's alone, never mounted in a sandbox.
        self.layers = state_dir / "build-layers" / job.service_id
        self.artifact = state_dir / "artifacts" / job.deployment_id
        self.steps: list[BuildStep] = []
        self.sha = self.author = self.subject = ""
        self._follower = LogFollower(self.work / "offsets.json")
        self._deadline = 0.0

    def say(self, message: str) -> None:
        now = datetime.now(UTC)
        self.node.emit(
            [
                LogLine(
                    deployment_id=self.job.deployment_id,
                    stream="koyeb",
                    msg=message,
                    created_at=now,
                )
            ]
        )

    def report(
        self, status: BuildStatus, message: str = "", artifact: Artifact | None = None
    ) -> None:
        self.node.report(
            BuildReport(
                deployment_id=self.job.deployment_id,
                status=status,
                steps=list(self.steps),
                sha=self.sha,
                commit_author=self.author,
                commit_message=self.subject,
                artifact=artifact,
                message=message,
            )
        )

    async def run(self) -> None:
        self._deadline = time.monotonic() + BUILD_TIMEOUT_S
        try:
            try:  # the whole build, clone and pulls included (steps also watch the deadline)
                artifact = await asyncio.wait_for(self._build(), BUILD_TIMEOUT_S)
            except TimeoutError:
                raise BuildFailed(
                    f"the build took longer than {BUILD_TIMEOUT_S / 60:.0f} minutes"
                ) from None
        except BuildFailed as e:
            self.say(f"Build failed: {e}")
            self.report(BuildStatus.FAILED, str(e))
        else:
            self.say("Build completed")
            self.report(BuildStatus.COMPLETED, artifact=artifact)
        finally:
            await asyncio.to_thread(shutil.rmtree, self.work, True)

    async def _build(self) -> Artifact:
        await asyncio.to_thread(shutil.rmtree, self.work, True)
        self.work.mkdir(parents=True)
        self.report(BuildStatus.RUNNING)
        src = self.work / "src"
        if self.job.git is not None:
            workdir = await self._clone(self.job.git, src)
        else:
            workdir = await self._unpack(src)
        if self.job.docker is not None:
            return await self._dockerfile(workdir, self.job.docker)
        chosen = self._plan(workdir)
        self.say(f"Detected a {chosen.language} app")
        workspace = self.work / "workspace"
        await asyncio.to_thread(
            shutil.copytree,
            workdir,
            workspace,
            symlinks=True,
            ignore=shutil.ignore_patterns(".git"),
        )
        if not self.job.use_cache:
            for path in (self.cache, self.layers):
                await asyncio.to_thread(shutil.rmtree, path, True)
        self.cache.mkdir(parents=True, exist_ok=True)
        env = run_env(dict(chosen.env), self.job.env)
        for n, step in enumerate(chosen.steps):
            await self._run_step(n, step, workspace, env)
        await asyncio.to_thread(shutil.rmtree, self.artifact, True)
        self.artifact.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(workspace.rename, self.artifact)
        return Artifact(
            path=str(self.artifact), run_command=chosen.run_command, env=dict(chosen.env)
        )

    async def _clone(self, git: GitSource, src: Path) -> Path:
        """Check the commit out into `src`; returns its workdir."""
        self.say(f"Cloning {git.repository}")
        started = datetime.now(UTC)
        try:
            commit = await asyncio.to_thread(
                checkout, git.repository or "", src, git.branch or "", git.tag or "", git.sha or ""
            )
        except GitError as e:
            self._step("clone", BuildStatus.FAILED, started)
            raise BuildFailed(f"Cannot clone {git.repository}: {e}") from e
        self.sha, self.author, self.subject = commit.sha, commit.author, commit.message
        self._step("clone", BuildStatus.COMPLETED, started)
        self.say(f"Checked out {commit.sha[:7]} {commit.message}")
        workdir = (src / (git.workdir or "")).resolve()
        if not workdir.is_relative_to(src.resolve()) or not workdir.is_dir():
            raise BuildFailed(f"workdir {git.workdir!r} is not a directory of the repository")
        return workdir

    async def _unpack(self, src: Path) -> Path:
        """Download the uploaded archive and unpack it into `src` (its files only: no link,
        device or path leaving `src`)."""
        self.say("Fetching the uploaded archive")
        started = datetime.now(UTC)
        try:
            data = await self.node.fetch(self.job.archive_id)
            await asyncio.to_thread(_untar, data, src, BUILD_RESOURCES.disk_mb * 2**20)
        except (ApiError, ApiUnreachable, tarfile.TarError, OSError) as e:
            self._step("fetch archive", BuildStatus.FAILED, started)
            raise BuildFailed(f"Cannot unpack the archive: {e}") from e
        self._step("fetch archive", BuildStatus.COMPLETED, started)
        return src

    async def _dockerfile(self, workdir: Path, docker: DockerBuilder) -> Artifact:
        """Build the Dockerfile with buildah: base images pulled on the host, the build in a
        sandbox (privileged for buildah, which contains the RUN steps itself)."""
        name = docker.dockerfile or "Dockerfile"
        workdir = workdir.resolve()
        path = (workdir / name).resolve()
        if not path.is_relative_to(workdir) or not path.is_file():
            raise BuildFailed(f"no Dockerfile at {name!r} in the source")
        try:
            images = base_images(path.read_text(errors="replace"))
        except DockerfileError as e:
            raise BuildFailed(str(e)) from e
        workspace = self.work / "workspace"
        await asyncio.to_thread(shutil.copytree, workdir, workspace, symlinks=True)
        # buildah's storage is the build's own (the host pulls into it, then reads the image
        # out of it: nothing a previous build's RUN steps could have planted links in).
        box = self.work / "docker"
        store = box / "buildah"
        store.mkdir(parents=True)
        started = datetime.now(UTC)
        self._step("pull base images", BuildStatus.RUNNING, started)
        try:
            for line in await asyncio.to_thread(dockerfile.pull, store, images):
                self.say(line)
        except ImageError as e:
            self._step("pull base images", BuildStatus.FAILED, started)
            raise BuildFailed(str(e)) from e
        self._step("pull base images", BuildStatus.COMPLETED, started)
        command = dockerfile.command(str(path.relative_to(workdir)), docker.target, self.job.env)
        step = Step("docker build", command)
        env = {**run_env({}, {}), "TMPDIR": "/tmp"}
        await self._run_step(0, step, workspace, env, cache=box, privileged=True)
        await asyncio.to_thread(shutil.rmtree, self.artifact, True)
        self.artifact.mkdir(parents=True)
        try:
            await asyncio.to_thread(dockerfile.unpack, store, self.artifact)
        except (ImageError, OSError) as e:
            raise BuildFailed(f"cannot unpack the built image: {e}") from e
        overrides = DockerSource(
            entrypoint=docker.entrypoint, command=docker.command, args=docker.args
        )
        return Artifact(kind="image", path=str(self.artifact), docker=overrides)

    def _plan(self, workdir: Path) -> Plan:
        def text(name: str) -> str | None:
            path = _own(workdir, name)
            return path.read_text(errors="replace") if path and path.is_file() else None

        files = frozenset(p.name for p in workdir.iterdir())
        try:
            return plan(
                Source(files=files, procfile=text("Procfile"), package_json=text("package.json")),
                self.job.service_type,
                self.job.build_command,
                self.job.run_command,
            )
        except BuildRefused as e:
            raise BuildFailed(str(e)) from e

    def _step(self, name: str, status: BuildStatus, started: datetime) -> None:
        done = status in (BuildStatus.COMPLETED, BuildStatus.FAILED)
        entry = BuildStep(
            name=name,
            status=status,
            started_at=started,
            finished_at=datetime.now(UTC) if done else None,
        )
        self.steps = [s for s in self.steps if s.name != name] + [entry]
        self.report(BuildStatus.RUNNING)

    async def _run_step(
        self,
        n: int,
        step: Step,
        workspace: Path,
        env: dict[str, str],
        cache: Path | None = None,
        privileged: bool = False,
    ) -> None:
        started = datetime.now(UTC)
        key = _cache_key(step, workspace)
        saved = self.layers / f"{n}-{key}" if key else None
        if saved is not None and saved.is_dir():
            self.say(f"{step.name}: reusing the previous build's output")
            await asyncio.to_thread(_restore, saved, workspace, step.reuse)
            self._step(step.name, BuildStatus.COMPLETED, started)
            return
        self._step(step.name, BuildStatus.RUNNING, started)
        self.say(f"Running {step.name}: {step.command}")
        code = await self._sandboxed(
            n, step.command, workspace, env, cache or self.cache, privileged
        )
        if code != 0:
            self._step(step.name, BuildStatus.FAILED, started)
            raise BuildFailed(f"{step.name} failed (exit code {code})")
        self._step(step.name, BuildStatus.COMPLETED, started)
        if saved is not None:
            await asyncio.to_thread(_save, workspace, step.reuse, saved)

    async def _sandboxed(
        self,
        n: int,
        command: str,
        workspace: Path,
        env: dict[str, str],
        cache: Path,
        privileged: bool,
    ) -> int:
        sandbox_id = f"build-{self.job.deployment_id[:8]}-{n}"
        with contextlib.suppress(SandboxError):  # one left by an agent that stopped meanwhile
            await asyncio.to_thread(self.driver.destroy, sandbox_id)
        spec = sandbox_for(
            sandbox_id,
            self.state_dir,
            workspace,
            ["/bin/sh", "-c", command],
            env,
            BUILD_RESOURCES,
            writable=True,
            cache=cache,
            egress=True,
            hostname="build",
            privileged=privileged,
        )
        # A start is not interrupted half-way: an abort waits for it, then destroys.
        starting = asyncio.ensure_future(asyncio.to_thread(self.driver.start, spec))
        try:
            state = await asyncio.shield(starting)
            while state.phase == Phase.RUNNING:
                self._collect(sandbox_id)
                if time.monotonic() > self._deadline:
                    await asyncio.to_thread(self.driver.stop, sandbox_id, 0)
                    raise BuildFailed(
                        f"the build took longer than {BUILD_TIMEOUT_S / 60:.0f} minutes"
                    )
                await asyncio.sleep(_POLL_S)
                state = await asyncio.to_thread(self.driver.inspect, sandbox_id)
            self._collect(sandbox_id)
            if state.oom_killed:
                raise BuildFailed(f"the build ran out of memory ({BUILD_RESOURCES.memory_mb} MB)")
            return state.exit_code if state.exit_code is not None else -1
        except SandboxError as e:
            raise BuildFailed(f"cannot start the build sandbox: {e}") from e
        finally:
            with contextlib.suppress(Exception):
                await starting
            with contextlib.suppress(SandboxError):
                await asyncio.to_thread(self.driver.destroy, sandbox_id)

    def _collect(self, sandbox_id: str) -> None:
        with contextlib.suppress(SandboxError, OSError):
            files = self.driver.logs(sandbox_id)
            lines = []
            for stream, path in (("stdout", files.stdout), ("stderr", files.stderr)):
                lines += self._follower.read(sandbox_id, stream, path)
            if lines:
                dep = self.job.deployment_id
                self.node.emit(
                    [
                        ln.model_copy(update={"instance_id": "", "deployment_id": dep})
                        for ln in lines
                    ]
                )


def _untar(data: bytes, dest: Path, limit: int) -> None:
    """Unpack an archive's files (tar's `data` filter: no link or path out of `dest`), at
    most `limit` bytes of them."""
    total = 0

    def bounded(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
        nonlocal total
        total += member.size
        if total > limit:
            raise tarfile.TarError(f"it unpacks to more than {limit} bytes")
        return tarfile.data_filter(member, path)

    dest.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        tar.extractall(dest, filter=bounded)


def _cache_key(step: Step, workspace: Path) -> str | None:
    """What the step's reusable outputs depend on: the named files' contents."""
    if not step.reuse or not step.cache_key_files:
        return None
    digest = hashlib.sha256(step.command.encode())
    for name in step.cache_key_files:
        path = _own(workspace, name)
        digest.update(name.encode() + b"\0")
        digest.update(path.read_bytes() if path and path.is_file() else b"\0missing")
    return digest.hexdigest()[:24]


def _own(root: Path, name: str) -> Path | None:
    """`root`/`name` if it is the source's own: no link on the way (a repository's symlink
    may point anywhere on the host, where the agent, unlike the build, can read)."""
    path = root
    for part in Path(name).parts:
        path = path / part
        if path.is_symlink():
            return None
    return path


def _save(workspace: Path, outputs: tuple[str, ...], saved: Path) -> None:
    """Keep a step's outputs for the next build (only the newest key of each step)."""
    saved.parent.mkdir(parents=True, exist_ok=True)
    for old in saved.parent.glob(f"{saved.name.split('-', 1)[0]}-*"):
        shutil.rmtree(old, ignore_errors=True)
    tmp = saved.with_name(saved.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in outputs:
        src = _own(workspace, name)
        if src is not None and src.is_dir():
            shutil.copytree(src, tmp / name, symlinks=True)
    tmp.rename(saved)


def _restore(saved: Path, workspace: Path, outputs: tuple[str, ...]) -> None:
    for name in outputs:
        if (saved / name).is_dir():
            target = workspace / name
            if target.is_symlink():
                target.unlink()
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(saved / name, target, symlinks=True)


class Builds:
    """The node's builds: started when listed, aborted when no longer listed."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._running: dict[str, asyncio.Task[None]] = {}
        # Finished here, but still listed until the API has the report: not built again.
        self._done: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}

    def sync(self, jobs: list[BuildJob]) -> None:
        listed = {j.deployment_id for j in jobs}
        self._done &= listed
        for job in jobs:
            if job.deployment_id not in self._running and job.deployment_id not in self._done:
                build = Build(job, self.node)
                task = asyncio.create_task(self._guarded(build))
                self._running[job.deployment_id] = task
        for dep_id, task in list(self._running.items()):
            if dep_id not in listed and not task.cancelling():
                task.cancel()

    async def _guarded(self, build: Build) -> None:
        # One build of a service at a time on the node: they share its cache.
        lock = self._locks.setdefault(build.job.service_id, asyncio.Lock())
        try:
            async with lock:
                await build.run()
            self._done.add(build.job.deployment_id)
        except asyncio.CancelledError:
            log.info("build of %s aborted", build.job.deployment_id)
            raise
        except Exception:
            log.exception("build of %s", build.job.deployment_id)
            build.report(BuildStatus.FAILED, "Internal error on the build node")
            self._done.add(build.job.deployment_id)
        finally:
            self._running.pop(build.job.deployment_id, None)

    def cancel(self) -> None:
        for task in self._running.values():
            task.cancel()
