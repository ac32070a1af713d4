"""Test helpers for the CLI tests."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from shoal.main import cli as shoal_cli


@dataclass
class Cli:
    """Runs `shoal ARGS...` in-process with the given environment."""

    env: Mapping[str, str | None]

    def __call__(self, *args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(shoal_cli, list(args), input=input, env=dict(self.env))

    def json(self, *args: str) -> Any:
        r = self("-o", "json", *args)
        assert r.exit_code == 0, r.output
        return json.loads(r.stdout)

    def with_env(self, **env: str | None) -> Cli:
        return Cli({**self.env, **env})


def eventually_status(api: httpx.Client, path: str, status: str, within: float = 60) -> None:
    """Poll a service until the control loop gives it `status` (for test set-up only)."""
    deadline = time.monotonic() + within
    seen = None
    while time.monotonic() < deadline:
        seen = api.get(path).json()["service"]["status"]
        if seen == status:
            return
        time.sleep(0.1)
    pytest.fail(f"{path} stayed {seen}, never {status}")
