"""The default Linux driver: every instance a bubblewrap sandbox with its own network and cgroup.

A start takes, in order: a network with its address (networks.py, netns.py; usually one made
ahead), the record (so a start that dies half-way can still be destroyed), the instance's
firewall (firewall.py: its exposed ports only), outbound NAT if the spec asks for it
(egress.py), the cgroup with the instance type's limits (cgroups.py),
the scratch disk (scratch.py), then bwrap (bwrap.py). bwrap is started in its own session
with its output going to files; in the moment between fork and exec the child joins the
cgroup and the network namespace, so the instance's first instruction already runs limited
and on its own address, with no helper process left behind. Nothing ties the sandbox to the
agent: a new driver on the same state directory `recover`s it, and bwrap's status file tells
the exit code even of a sandbox that ended while no agent was watching.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import posixpath
import re
import shutil
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Callable
from pathlib import Path

from shoal.runtime import cgroups, egress, firewall, netns, scratch
from shoal.runtime.addresses import AddressPool
from shoal.runtime.bwrap import (
    MOUNTPOINTS,
    bwrap_options,
    command_line,
    encode_options,
    identity,
    parse_status,
)
from shoal.runtime.driver import (
    ExecRequest,
    LogFiles,
    Phase,
    Resources,
    SandboxError,
    SandboxSpec,
    SandboxState,
    SandboxUnavailable,
    Usage,
)
from shoal.runtime.networks import Networks
from shoal.runtime.proc import is_running, start_time
from shoal.runtime.records import InstanceFiles, Record

_INSTANCE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_TOOLS = ("bwrap", "ip", "nsenter", "mkfs.ext4")
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_START_TIMEOUT_S = 10.0
_KILL_WAIT_S = 2.0  # how long bwrap may take to record the exit once the sandbox is killed
_POLL_S = 0.001


def require_privileges() -> None:
    """The one place that decides whether this host can run sandboxes at all."""
    if os.geteuid() != 0:
        raise SandboxUnavailable(
            "the sandbox driver must run as root: without it, it can create neither the "
            "per-instance network namespace and veth pair (private address), nor the cgroups "
            "that enforce vCPU, memory and pids limits, nor the scratch disk's loop mount"
        )
    missing = [tool for tool in _TOOLS if shutil.which(tool) is None]
    if missing:
        raise SandboxUnavailable(
            f"the sandbox driver needs {', '.join(missing)}: run scripts/install-system-deps"
        )


class SandboxDriver:
    name = "sandbox"

    def __init__(
        self,
        state_dir: Path,
        address_pool: str = "100.72.0.0/16",
        cgroup_parent: str = "shoal",
        spare_networks: int = 2,
    ) -> None:
        """One driver (one agent) per state directory: making one frees the leftovers of
        starts that died half-way. `address_pool` must not overlap any network the host
        reaches; `spare_networks` is how many ready networks to keep (networks.py)."""
        require_privileges()
        self._hierarchy = cgroups.detect()
        self._hierarchy.prepare(cgroup_parent)
        self._cgroup_parent = cgroup_parent
        self._instances = state_dir / "instances"
        self._instances.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._templates = state_dir / "templates"
        self._networks = Networks(AddressPool(address_pool, state_dir / "leases"), spare_networks)
        # bwrap processes this driver started, to reap them (recovered ones have init for that).
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._networks.collect(self._recorded())
        self._networks.keep_spares()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, spec: SandboxSpec) -> SandboxState:
        if not _INSTANCE_ID.match(spec.instance_id):
            raise SandboxError(f"invalid instance id {spec.instance_id!r}")
        if not spec.rootfs.is_dir():
            raise SandboxError(f"image root {spec.rootfs} is not a directory")
        try:
            who = identity(spec.user)
        except ValueError as e:
            raise SandboxError(str(e)) from None
        for bind in spec.binds:
            if not posixpath.isabs(bind.target):
                raise SandboxError(f"bind target {bind.target!r} is not an absolute path")
        files = self._files(spec.instance_id)
        try:
            files.root.mkdir(mode=0o700)
        except FileExistsError:
            raise SandboxError(f"sandbox {spec.instance_id} already exists") from None
        try:
            lease = self._networks.acquire(spec.instance_id)
            net = netns.network_for(lease)
            cgroup = self._hierarchy.cgroup(self._cgroup_parent, spec.instance_id)
            record = Record(
                instance_id=spec.instance_id,
                slot=lease.slot,
                address=str(lease.instance),
                netns=net.netns,
                veth=net.veth,
                cgroup_version=cgroup.version.value,
                cgroup_dirs={k: str(v) for k, v in cgroup.dirs.items()},
                uid=who.uid,
                gid=who.gid,
                workdir=spec.workdir,
                env={"PATH": _DEFAULT_PATH, **spec.env},
                rootfs=str(spec.rootfs),
            )
            record.save(files.record)
            firewall.apply(net, spec.ports)
            if spec.egress:
                egress.enable(net, lease, self._networks.pool.pool)
            if spec.mesh:
                egress.join_mesh(net, lease, spec.mesh)
            cgroup.create(cgroups.limits_for(spec.resources))
            scratch.create(
                self._templates, files.scratch_image, files.scratch, spec.resources.disk_mb
            )
            for name in MOUNTPOINTS:  # bwrap can't create them once the image is read-only
                (spec.rootfs / name).mkdir(exist_ok=True)
            _file_mountpoints(spec)
            self._run(spec, files, record, cgroup)
        except BaseException:
            self.destroy(spec.instance_id)
            raise
        return self.inspect(spec.instance_id)

    def resume(self, spec: SandboxSpec) -> SandboxState:
        """Start a stopped sandbox's command again (deep sleep's wake), in the network,
        firewall, cgroup and scratch it kept: only bwrap is launched, with `spec`'s limits."""
        record = self._existing(spec.instance_id)
        if self.inspect(spec.instance_id).phase is Phase.RUNNING:
            raise SandboxError(f"sandbox {spec.instance_id} is running")
        cgroup = record.cgroup
        cgroup.limit(cgroups.limits_for(spec.resources))
        try:
            self._run(spec, self._files(spec.instance_id), record, cgroup)
        except BaseException:
            cgroup.kill_all()
            raise
        return self.inspect(spec.instance_id)

    def limit(self, instance_id: str, resources: Resources) -> None:
        self._existing(instance_id).cgroup.limit(cgroups.limits_for(resources))

    def _run(
        self, spec: SandboxSpec, files: InstanceFiles, record: Record, cgroup: cgroups.Cgroup
    ) -> None:
        """Launch bwrap, record it, and return once the instance's command runs."""
        proc = self._launch(spec, files, record)
        self._children[spec.instance_id] = proc
        record.started(proc.pid, start_time(proc.pid) or 0, time.time()).save(files.record)
        self._wait_started(proc, files, cgroup)

    def _launch(
        self, spec: SandboxSpec, files: InstanceFiles, record: Record
    ) -> subprocess.Popen[bytes]:
        status_fd = os.open(
            files.status, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600
        )
        options_fd = os.memfd_create("bwrap-options")
        try:
            os.write(options_fd, encode_options(bwrap_options(spec, files.scratch, status_fd)))
            os.lseek(options_fd, 0, os.SEEK_SET)
            with files.stdout.open("ab") as out, files.stderr.open("ab") as err:
                return subprocess.Popen(
                    command_line(spec, options_fd),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    # Through the environment, not --setenv: a command line is world-readable.
                    env=record.env,
                    cwd="/",
                    pass_fds=(status_fd, options_fd),
                    extra_groups=[],
                    start_new_session=True,
                    preexec_fn=_joiner(record, record.network),
                )
        finally:
            os.close(options_fd)
            os.close(status_fd)

    def _wait_started(
        self, proc: subprocess.Popen[bytes], files: InstanceFiles, cgroup: cgroups.Cgroup
    ) -> None:
        """Until the instance's command runs: bwrap's pid 1 forks it only once the sandbox
        is complete (mounts, user map, root), so a third process in the cgroup means ready;
        an `exec` any earlier could find the sandbox half-made."""
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            exited = proc.poll() is not None  # before reading: bwrap writes, then exits
            status = parse_status(_read(files.status))
            if status.child_pid is not None and (
                exited
                or status.exit_code is not None
                or cgroup.pids() - {proc.pid, status.child_pid}
            ):
                return  # running, or made and already over (inspect tells how it ended)
            if exited:
                tail = _read(files.stderr)[-2000:].strip()
                raise SandboxError(f"bwrap exited with {proc.returncode}: {tail}")
            if time.monotonic() > deadline:
                raise SandboxError(f"bwrap did not start the sandbox in {_START_TIMEOUT_S} s")
            time.sleep(_POLL_S)

    def inspect(self, instance_id: str) -> SandboxState:
        """The sandbox as it is now. One that has exited loses its leftover processes here."""
        record = self._record(instance_id)
        if record is None:
            return SandboxState(instance_id, Phase.MISSING)
        self._reap(instance_id)
        # Liveness first: bwrap writes the exit code before it exits, never after.
        alive = is_running(record.pid, record.pid_start)
        status = parse_status(_read(self._files(instance_id).status))
        cgroup = record.cgroup
        code = status.exit_code
        running = alive and code is None
        if not running and record.pid is not None and cgroup.pids():
            # bwrap's pid 1 outlives the instance's command while anything it started runs
            # on; the sandbox is over, so are they.
            cgroup.kill_all()
        child = self._children.get(instance_id)
        if not running and code is None and child is not None:
            code = child.returncode  # bwrap itself was killed before it could record the exit
        return SandboxState(
            instance_id,
            Phase.RUNNING if running else Phase.EXITED,
            pid=record.pid,
            address=record.address,
            exit_code=code,
            oom_killed=cgroup.oom_kills() > 0,
            started_at=record.started_at,
            frozen=running and cgroup.is_frozen(),
            rootfs=Path(record.rootfs) if record.rootfs else None,
        )

    def stop(self, instance_id: str, grace_seconds: float) -> SandboxState:
        record = self._record(instance_id)
        if record is None or self.inspect(instance_id).phase is not Phase.RUNNING:
            return self.inspect(instance_id)
        cgroup = record.cgroup
        cgroup.thaw()
        init = parse_status(_read(self._files(instance_id).status)).child_pid
        # bwrap forwards no signal, and the sandbox's pid 1 ignores SIGTERM: signal the rest.
        for pid in cgroup.pids() - {record.pid, init}:
            _signal(pid, signal.SIGTERM)
        if not self._wait_exit(record, grace_seconds) and init in cgroup.pids():
            # Killing pid 1 ends the whole PID namespace; bwrap then records the exit (-9).
            _signal(init, signal.SIGKILL)
            self._wait_exit(record, _KILL_WAIT_S)
        cgroup.kill_all()
        return self.inspect(instance_id)

    def _wait_exit(self, record: Record, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            self._reap(record.instance_id)
            if not is_running(record.pid, record.pid_start):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)

    def destroy(self, instance_id: str) -> None:
        files = self._files(instance_id)
        record = self._record(instance_id)
        if record is not None:
            cgroup = record.cgroup
            cgroup.kill_all()
            self._wait_exit(record, _KILL_WAIT_S)
            scratch.remove(files.scratch_image, files.scratch)
            self._networks.release(record.slot)  # its firewall rules with it
            cgroup.remove()
        self._children.pop(instance_id, None)
        shutil.rmtree(files.root, ignore_errors=True)
        if record is not None:
            self._networks.keep_spares()

    def recover(self) -> list[SandboxState]:
        """Every sandbox in the state directory. Call it before starting any: it also frees
        what a start that died before writing its record left behind."""
        for root in self._instances.iterdir():
            if self._record(root.name) is None:
                shutil.rmtree(root, ignore_errors=True)
        live = self._recorded()
        self._networks.collect(live)
        self._networks.keep_spares()
        return [self.inspect(instance_id) for instance_id in sorted(live)]

    # -- observing and acting on a running sandbox --------------------------------------------

    def usage(self, instance_id: str) -> Usage:
        return self._existing(instance_id).cgroup.usage()

    def logs(self, instance_id: str) -> LogFiles:
        files = self._files(instance_id)
        return LogFiles(files.stdout, files.stderr)

    def freeze(self, instance_id: str) -> None:
        self._existing(instance_id).cgroup.freeze()

    def thaw(self, instance_id: str) -> None:
        self._existing(instance_id).cgroup.thaw()

    def exec(self, request: ExecRequest) -> subprocess.Popen[bytes]:
        """Run a command in the sandbox's namespaces, root and cgroup, as its user. Without a
        tty its stdin, stdout and stderr are pipes; with one, stdin and stdout are the two
        directions of the pty's master end (stderr goes there too) and stderr is None."""
        record = self._existing(request.instance_id)
        state = self.inspect(request.instance_id)
        if state.phase is not Phase.RUNNING or state.frozen:
            raise SandboxError(
                f"sandbox {request.instance_id} is "
                f"{'frozen' if state.frozen else state.phase.value.lower()}"
            )
        init = parse_status(_read(self._files(request.instance_id).status)).child_pid
        if init is None:
            raise SandboxError(f"sandbox {request.instance_id} has no process to join yet")
        argv = [
            "nsenter",
            f"--target={init}",
            "--user",
            "--mount",
            "--uts",
            "--ipc",
            "--net",
            "--pid",
            "--cgroup",
            "--root",
            f"--wdns={record.workdir}",
            f"--setuid={record.uid}",
            f"--setgid={record.gid}",
            "--",
            *request.argv,
        ]
        env = {**record.env, **request.env}
        join = _joiner(record)  # nsenter joins the namespaces
        if not request.tty:
            return subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,
                preexec_fn=join,
            )
        master, slave = _sandbox_pty(init)
        try:
            proc = subprocess.Popen(
                argv,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=env,
                start_new_session=True,
                preexec_fn=_with_tty(join),
            )
        finally:
            os.close(slave)
        proc.stdin = open(master, "wb", buffering=0)  # noqa: SIM115 - the caller owns them
        proc.stdout = open(os.dup(master), "rb", buffering=0)  # noqa: SIM115
        return proc

    # -- helpers -------------------------------------------------------------------------------

    def _files(self, instance_id: str) -> InstanceFiles:
        return InstanceFiles(self._instances / instance_id)

    def _recorded(self) -> set[str]:
        return {p.name for p in self._instances.iterdir() if self._files(p.name).record.exists()}

    def _record(self, instance_id: str) -> Record | None:
        if not _INSTANCE_ID.match(instance_id):
            return None
        return Record.load(self._files(instance_id).record)

    def _existing(self, instance_id: str) -> Record:
        record = self._record(instance_id)
        if record is None:
            raise SandboxError(f"no sandbox {instance_id}")
        return record

    def _reap(self, instance_id: str) -> None:
        child = self._children.get(instance_id)
        if child is not None:
            child.poll()


def _file_mountpoints(spec: SandboxSpec) -> None:
    """An empty file in the image where a file is bound and the image has none (an
    /etc/hosts): bwrap can make no mountpoint in a read-only root."""
    for bind in spec.binds:
        target = spec.rootfs / bind.target.lstrip("/")
        if bind.source.is_file() and not target.exists() and not target.is_symlink():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()


def _joiner(record: Record, net: netns.Network | None = None) -> Callable[[], None]:
    """What the child does between fork and exec: join the instance's cgroup (and netns).
    On cgroup v1 the first write costs an RCU grace period, 5 to 20 ms of the start."""
    procs = record.cgroup.procs_files()

    def join() -> None:
        pid = str(os.getpid()).encode()
        for path in procs:
            fd = os.open(path, os.O_WRONLY)
            os.write(fd, pid)
            os.close(fd)
        if net is not None:
            netns.enter(net)

    return join


# The ioctls of a pty's master end (Linux's generic values, as on x86-64 and arm64).
_TIOCGPTN = 0x80045430  # its number in its /dev/pts
_TIOCSPTLCK = 0x40045431  # (un)lock its slave end


def _sandbox_pty(init: int) -> tuple[int, int]:
    """A pty of the sandbox's own /dev/pts, so that commands in it can name their terminal
    (`tty`, ttyname): its master and slave ends, opened through the sandbox's root."""
    pts = f"/proc/{init}/root/dev/pts"
    master = os.open(f"{pts}/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, _TIOCSPTLCK, struct.pack("i", 0))
        (number,) = struct.unpack("I", fcntl.ioctl(master, _TIOCGPTN, bytes(4)))
        slave = os.open(f"{pts}/{number}", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        os.close(master)
        raise
    return master, slave


def _with_tty(join: Callable[[], None]) -> Callable[[], None]:
    def join_with_tty() -> None:
        join()
        # stdin is the pty's slave end and setsid already ran: make it the controlling tty.
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    return join_with_tty


def _signal(pid: int | None, signum: int) -> None:
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""
