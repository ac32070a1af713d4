"""uvicorn's server for the platform's own processes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import uvicorn


class Server(uvicorn.Server):
    """uvicorn's server, minus its signal capture: the process that runs it handles SIGINT
    and SIGTERM itself (uvicorn would re-raise the signal after its stop and die by it)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
