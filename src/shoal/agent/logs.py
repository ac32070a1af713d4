"""Following instances' output files and turning new lines into log lines for the API.

Offsets are kept in a small state file so a restarted agent neither loses nor repeats lines.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from shoal.core.assignment import LogLine

MAX_LINE = 16 * 1024  # longer lines are cut
MAX_READ = 256 * 1024  # per file and round, so one noisy instance cannot starve the others


class LogFollower:
    def __init__(self, state_file: Path) -> None:
        self._state_file = state_file
        try:
            self._offsets: dict[str, int] = json.loads(state_file.read_text())
        except (FileNotFoundError, ValueError):
            self._offsets = {}
        self._partial: dict[str, bytes] = {}

    def read(self, instance_id: str, stream: str, path: Path) -> list[LogLine]:
        key = f"{instance_id}/{stream}"
        offset = self._offsets.get(key, 0)
        try:
            with path.open("rb") as f:
                if os.fstat(f.fileno()).st_size < offset:
                    offset = 0  # the file was replaced
                f.seek(offset)
                data = f.read(MAX_READ)
        except FileNotFoundError:
            return []
        self._offsets[key] = offset + len(data)
        data = self._partial.pop(key, b"") + data
        *lines, rest = data.split(b"\n")
        if rest:
            self._partial[key] = rest[:MAX_LINE]
        now = datetime.now(UTC)
        return [
            LogLine(
                instance_id=instance_id,
                stream=stream,
                created_at=now,
                msg=line[:MAX_LINE].decode("utf-8", "replace").rstrip("\r"),
            )
            for line in lines
        ]

    def forget(self, instance_id: str) -> None:
        for key in [k for k in self._offsets if k.startswith(f"{instance_id}/")]:
            del self._offsets[key]
            self._partial.pop(key, None)

    def save(self) -> None:
        tmp = self._state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._offsets))
        tmp.replace(self._state_file)
