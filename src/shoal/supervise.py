"""Child processes kept running: started again whenever they die, stopped when cancelled.

What `shoal up` runs beside itself (node agents, API readers, the edge) and what the edge
runs (HAProxy) are supervised the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import signal
from collections.abc import Callable

log = logging.getLogger(__name__)
RESTART_S = 1.0  # between a child's death and its next start
STOP_S = 10.0  # for a child to stop after SIGTERM, before SIGKILL


PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before it runs its program: SIGTERM it if its parent dies, even by
    SIGKILL, so that nothing it supervised outlives it holding ports (an agent's instances
    are not its children's: they live on, to be adopted)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervised:
    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.name = name
        self._argv = argv
        self._env = env
        self._proc: asyncio.subprocess.Process | None = None

    async def run(self, ready: Callable[[], bool] = lambda: True) -> None:
        """Start the child once `ready()`, and again whenever it dies, until cancelled
        (then stop it: SIGTERM, SIGKILL after STOP_S)."""
        while not ready():
            await asyncio.sleep(0.05)
        while True:
            self._proc = await asyncio.create_subprocess_exec(
                *self._argv,
                stdin=asyncio.subprocess.DEVNULL,
                env=self._env,
                preexec_fn=_die_with_parent,
            )
            try:
                code = await self._proc.wait()
            except asyncio.CancelledError:
                if self._proc.returncode is None:
                    self._proc.terminate()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._proc.wait(), STOP_S)
                    if self._proc.returncode is None:
                        self._proc.kill()
                raise
            log.warning("%s exited with %s; starting it again", self.name, code)
            await asyncio.sleep(RESTART_S)

    def signal(self, sig: signal.Signals) -> bool:
        """Send `sig` to the child if it runs (False if it does not)."""
        if self._proc is None or self._proc.returncode is not None:
            return False
        self._proc.send_signal(sig)
        return True
