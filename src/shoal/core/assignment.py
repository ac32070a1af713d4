"""What the control plane and node agents say to each other (shoal's own, not Koyeb's API).

Agents pull `Assignment`s for their node and push `InstanceReport`s and log lines back. A
user's exec session reaches the node in the same pull (`ExecSession`); the agent then opens
the session's WebSocket to the API and sends `ExecOutput`s for the `ExecInput`s it gets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from shoal.core.catalog import INSTANCE_TYPES
from shoal.core.definition import (
    DeploymentDefinition,
    DockerBuilder,
    DockerSource,
    GitSource,
    HealthCheck,
    Port,
)
from shoal.core.enums import BuildStatus, InstanceStatus
from shoal.core.mesh import Mesh
from shoal.core.metrics import ResourceSample
from shoal.core.regional import regional_definition
from shoal.core.rollout import Desired
from shoal.core.secret_refs import interpolate


class Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegistrySecret(Wire):
    kind: str  # which `*_registry` field of Koyeb's REGISTRY secret: private_registry, ...
    config: dict[str, Any]


class Artifact(Wire):
    """What a build made, a read-only tree on the node that built it: a buildpack's app and
    its dependencies, run at /workspace on the node's stack (its own userland, read-only);
    or a Dockerfile's image (`path`/rootfs and its config, `path`/config.json), run as an
    image is, with the builder's entrypoint, command and args over the image's."""

    kind: str = "buildpack"  # buildpack | image
    path: str
    run_command: str = ""
    env: dict[str, str] = {}
    docker: DockerSource | None = None  # an image's overrides


class Assignment(Wire):
    """One instance a node should run (desired RUN), keep frozen (SLEEP) or stop (STOP)."""

    instance_id: str
    organization_id: str
    app_id: str
    service_id: str
    deployment_id: str
    region: str
    replica_index: int
    desired: Desired
    status: InstanceStatus  # as last reported
    docker: DockerSource
    artifact: Artifact | None = None  # a git deployment's build: run instead of an image
    registry_secret: RegistrySecret | None = None  # the service's image_registry_secret
    env: dict[str, str]  # secrets resolved, PORT set
    ports: list[Port]
    health_checks: list[HealthCheck]
    instance_type: str
    vcpu: float
    memory_mb: int
    disk_mb: int
    hostname: str
    mesh: Mesh | None = None  # the organization's private mesh, as this instance sees it


class ExecSession(Wire):
    """A command a user runs in one of the node's instances (`/v1/streams/instances/exec`):
    the agent connects to `/internal/v1/exec/{session_id}` and runs it there."""

    session_id: str
    instance_id: str
    command: list[str]
    tty: bool


class BuildJob(Wire):
    """A deployment for the node to build: fetch its source (a git clone, or an uploaded
    archive), build it in sandboxes, report."""

    deployment_id: str
    service_id: str
    service_type: str  # WEB | WORKER
    git: GitSource | None = None
    archive_id: str = ""  # when the source is an archive
    docker: DockerBuilder | None = None  # a Dockerfile build (else a buildpack's)
    build_command: str | None = None
    run_command: str | None = None
    env: dict[str, str]  # the service's env, secrets resolved: builds see it too
    use_cache: bool = True  # reuse dependencies from the service's previous build


class AssignmentList(Wire):
    node_id: str
    assignments: list[Assignment]
    exec_sessions: list[ExecSession] = []  # waiting for the agent to connect
    builds: list[BuildJob] = []


class TtySize(Wire):
    height: Annotated[int, Field(ge=0, le=0xFFFF)]
    width: Annotated[int, Field(ge=0, le=0xFFFF)]


class ExecFrame(BaseModel):
    """One frame of an exec session's WebSocket; bytes travel as base64."""

    model_config = ConfigDict(extra="forbid", ser_json_bytes="base64", val_json_bytes="base64")


class ExecInput(ExecFrame):
    """API -> agent: input for the command, the end of it (`close`), or the terminal's size."""

    stdin: bytes = b""
    close: bool = False
    tty_size: TtySize | None = None


class ExecOutput(ExecFrame):
    """Agent -> API: output, then last either the exit code or why the command could not run."""

    stdout: bytes = b""
    stderr: bytes = b""
    exit_code: int | None = None
    error: str = ""


class NodeHello(Wire):
    name: str
    region: str
    cpus: float
    memory_mb: int
    waker: str = ""  # the agent's Unix socket that thaws frozen instances (agent/waker.py)


class NodeReply(Wire):
    node_id: str


class InstanceReport(Wire):
    instance_id: str
    status: InstanceStatus
    message: str = ""
    started_at: datetime | None = None
    terminated_at: datetime | None = None
    address: str | None = None  # where the instance listens, as the node reaches it


class LogLine(Wire):
    instance_id: str = ""  # a runtime line's instance
    deployment_id: str = ""  # a build line's deployment (then no instance)
    stream: str  # stdout | stderr | koyeb (the platform's own lines)
    msg: str
    created_at: datetime


class BuildStep(Wire):
    name: str
    status: BuildStatus
    started_at: datetime | None = None
    finished_at: datetime | None = None


class BuildReport(Wire):
    """Where a build is: RUNNING (with its steps so far), then COMPLETED with its artifact
    or FAILED with the reason."""

    deployment_id: str
    status: BuildStatus
    steps: list[BuildStep] = []
    sha: str = ""
    commit_message: str = ""
    commit_author: str = ""
    artifact: Artifact | None = None
    message: str = ""


class ReportBatch(Wire):
    instances: list[InstanceReport] = []
    logs: list[LogLine] = []
    builds: list[BuildReport] = []
    resources: list[ResourceSample] = []


@dataclass(frozen=True)
class Placement:
    """The facts about one instance that its assignment is made from."""

    instance_id: str
    organization_id: str
    app_id: str
    app_name: str
    service_id: str
    service_name: str
    deployment_id: str
    region: str
    replica_index: int
    desired: Desired
    status: InstanceStatus
    public_domain: str


def build(
    p: Placement,
    definition: DeploymentDefinition,
    secrets: Mapping[str, str],
    registry_secret: RegistrySecret | None,
    artifact: Artifact | None = None,
) -> Assignment:
    """The assignment of one instance (pure): the region's view of the definition, env with
    secrets resolved, `PORT` = the lowest exposed port, and Koyeb's `KOYEB_*` variables."""
    view = regional_definition(definition, p.region)
    regional = DeploymentDefinition.model_validate(
        {k: v for k, v in view.items() if k in ("name", "type", "ports", "health_checks", "docker")}
    )
    itype = INSTANCE_TYPES[view.get("instance_type") or "nano"]
    env: dict[str, str] = {
        "KOYEB_APP_NAME": p.app_name,
        "KOYEB_APP_ID": p.app_id,
        "KOYEB_SERVICE_NAME": p.service_name,
        "KOYEB_SERVICE_ID": p.service_id,
        "KOYEB_DEPLOYMENT_ID": p.deployment_id,
        "KOYEB_INSTANCE_ID": p.instance_id,
        "KOYEB_INSTANCE_TYPE": itype.id,
        "KOYEB_REGION": p.region,
        "KOYEB_PUBLIC_DOMAIN": p.public_domain,
    }
    ports = sorted(port.port for port in regional.ports or [] if port.port)
    if ports:
        env["PORT"] = str(ports[0])
    env |= user_env(view, secrets)
    return Assignment(
        instance_id=p.instance_id,
        organization_id=p.organization_id,
        app_id=p.app_id,
        service_id=p.service_id,
        deployment_id=p.deployment_id,
        region=p.region,
        replica_index=p.replica_index,
        desired=p.desired,
        status=p.status,
        docker=regional.docker or DockerSource(),
        artifact=artifact,
        registry_secret=registry_secret,
        env=env,
        ports=list(regional.ports or []),
        health_checks=list(regional.health_checks or []),
        instance_type=itype.id,
        vcpu=itype.vcpu_shares,
        memory_mb=itype.memory_mb,
        disk_mb=itype.disk_mb,
        hostname=f"{p.service_name}-{p.replica_index}",
    )


def user_env(view: Mapping[str, Any], secrets: Mapping[str, str]) -> dict[str, str]:
    """The env vars of a region's view of a definition, `{{ secret.NAME }}`s resolved."""
    env = {}
    for e in view.get("env", []):
        if e.get("secret"):
            env[e["key"]] = secrets[e["secret"]]
        else:
            env[e["key"]] = interpolate(e.get("value", ""), secrets)
    return env
