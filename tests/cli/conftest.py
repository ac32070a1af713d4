"""The CLI against one real `shoal up` (SQLite) for the session; every test gets its own
organization and token on it, so tests see only their own resources."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tests.cli.helpers import Cli
from tests.conftest import Shoal, start_shoal

_orgs = itertools.count(1)


@dataclass(frozen=True)
class Tenant:
    url: str
    org: str  # the organization's name: app domains are <app>-<org>.localhost
    token: str


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shoal]:
    s = start_shoal(tmp_path_factory.mktemp("cli-platform") / "data")
    yield s
    s.stop()


@pytest.fixture
def tenant(platform: Shoal) -> Tenant:
    """A fresh organization with a token of its own."""
    name = f"cli-{next(_orgs)}"
    with platform.client() as admin:
        org = admin.post("/v1/organizations", json={"name": name}).json()["organization"]
        cred = admin.post(
            "/v1/credentials",
            json={"name": "cli tests", "organization_id": org["id"], "type": "ORGANIZATION"},
        ).json()
    return Tenant(platform.url, name, cred["credential"]["token"])


@pytest.fixture
def api(tenant: Tenant) -> Iterator[httpx.Client]:
    """The tenant's view of the API, to check what the CLI did."""
    with httpx.Client(
        base_url=tenant.url, timeout=30, headers={"Authorization": f"Bearer {tenant.token}"}
    ) as c:
        yield c


@pytest.fixture
def config_home(tmp_path: Path) -> Path:
    return tmp_path / "config"


@pytest.fixture
def bare(config_home: Path) -> Cli:
    """No URL or token from the environment: only flags and the config file count."""
    return Cli({"XDG_CONFIG_HOME": str(config_home), "SHOAL_URL": None, "SHOAL_TOKEN": None})


@pytest.fixture
def cli(bare: Cli, tenant: Tenant) -> Cli:
    """Pointed at the platform with the tenant's token, through the environment."""
    return bare.with_env(SHOAL_URL=tenant.url, SHOAL_TOKEN=tenant.token)
