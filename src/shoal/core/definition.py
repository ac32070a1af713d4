"""A service's deployment definition, in Koyeb's wire format (`DeploymentDefinition`).

The models accept what a client may send; `defaults.complete` fills in what it left out and
`validation.check` reports every problem at once.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict


class Wire(BaseModel):
    """Base of every wire model: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class DefinitionType(StrEnum):
    INVALID = "INVALID"
    WEB = "WEB"
    WORKER = "WORKER"
    DATABASE = "DATABASE"
    SANDBOX = "SANDBOX"


class StrategyType(StrEnum):
    INVALID = "DEPLOYMENT_STRATEGY_TYPE_INVALID"
    DEFAULT = "DEPLOYMENT_STRATEGY_TYPE_DEFAULT"
    CANARY = "DEPLOYMENT_STRATEGY_TYPE_CANARY"
    ROLLING = "DEPLOYMENT_STRATEGY_TYPE_ROLLING"
    BLUE_GREEN = "DEPLOYMENT_STRATEGY_TYPE_BLUE_GREEN"
    IMMEDIATE = "DEPLOYMENT_STRATEGY_TYPE_IMMEDIATE"


class Mesh(StrEnum):
    AUTO = "DEPLOYMENT_MESH_AUTO"
    ENABLED = "DEPLOYMENT_MESH_ENABLED"
    DISABLED = "DEPLOYMENT_MESH_DISABLED"


class Strategy(Wire):
    type: StrategyType = StrategyType.DEFAULT


class BasicAuthPolicy(Wire):
    username: str | None = None
    password: str | None = None


class SecurityPolicies(Wire):
    basic_auths: list[BasicAuthPolicy] | None = None
    api_keys: list[str] | None = None


class Route(Wire):
    port: int | None = None
    path: str | None = None
    security_policies: SecurityPolicies | None = None


class Port(Wire):
    port: int | None = None
    protocol: str | None = None


class ProxyPort(Wire):
    port: int | None = None
    protocol: str | None = "tcp"


class Env(Wire):
    scopes: list[str] | None = None
    key: str | None = None
    value: str | None = None
    secret: str | None = None


class TargetValue(Wire):
    value: int | None = None


class ResponseTimeTarget(Wire):
    value: int | None = None
    quantile: int | None = None


class SleepIdleDelay(Wire):
    value: int | None = None
    deep_sleep_value: int | None = None
    light_sleep_value: int | None = None


class ScalingTarget(Wire):
    average_cpu: TargetValue | None = None
    average_mem: TargetValue | None = None
    requests_per_second: TargetValue | None = None
    concurrent_requests: TargetValue | None = None
    requests_response_time: ResponseTimeTarget | None = None
    sleep_idle_delay: SleepIdleDelay | None = None


class Scaling(Wire):
    scopes: list[str] | None = None
    min: int | None = None
    max: int | None = None
    targets: list[ScalingTarget] | None = None


class InstanceTypeChoice(Wire):
    scopes: list[str] | None = None
    type: str | None = None


class TCPCheck(Wire):
    port: int | None = None


class HTTPHeader(Wire):
    key: str | None = None
    value: str | None = None


class HTTPCheck(Wire):
    port: int | None = None
    path: str | None = None
    method: str | None = None
    headers: list[HTTPHeader] | None = None


class HealthCheck(Wire):
    grace_period: int | None = None
    interval: int | None = None
    restart_limit: int | None = None
    timeout: int | None = None
    tcp: TCPCheck | None = None
    http: HTTPCheck | None = None


class ConfigFile(Wire):
    path: str | None = None
    permissions: str | None = None
    content: str | None = None


class DockerSource(Wire):
    image: str | None = None
    command: str | None = None
    args: list[str] | None = None
    image_registry_secret: str | None = None
    entrypoint: list[str] | None = None
    privileged: bool | None = None


class BuildpackBuilder(Wire):
    build_command: str | None = None
    run_command: str | None = None
    privileged: bool | None = None


class DockerBuilder(Wire):
    dockerfile: str | None = None
    entrypoint: list[str] | None = None
    command: str | None = None
    args: list[str] | None = None
    target: str | None = None
    privileged: bool | None = None


class GitSource(Wire):
    repository: str | None = None
    branch: str | None = None
    tag: str | None = None
    sha: str | None = None
    build_command: str | None = None
    run_command: str | None = None
    no_deploy_on_push: bool | None = None
    workdir: str | None = None
    buildpack: BuildpackBuilder | None = None
    docker: DockerBuilder | None = None


class ArchiveSource(Wire):
    id: str | None = None
    buildpack: BuildpackBuilder | None = None
    docker: DockerBuilder | None = None


class DeploymentDefinition(Wire):
    name: str | None = None
    type: DefinitionType | None = None
    strategy: Strategy | None = None
    routes: list[Route] | None = None
    ports: list[Port] | None = None
    proxy_ports: list[ProxyPort] | None = None
    env: list[Env] | None = None
    regions: list[str] | None = None
    scalings: list[Scaling] | None = None
    instance_types: list[InstanceTypeChoice] | None = None
    health_checks: list[HealthCheck] | None = None
    # Accepted so that a client's request parses; `validation.check` refuses non-empty values
    # for the capabilities shoal does not offer.
    volumes: list[dict[str, Any]] | None = None
    config_files: list[ConfigFile] | None = None
    skip_cache: bool | None = None
    mesh: Mesh | None = None
    network_policy: dict[str, Any] | None = None
    docker: DockerSource | None = None
    git: GitSource | None = None
    database: dict[str, Any] | None = None
    archive: ArchiveSource | None = None

    def wire(self) -> dict[str, Any]:
        """The JSON form, without the fields nobody set."""
        return self.model_dump(mode="json", exclude_none=True)
