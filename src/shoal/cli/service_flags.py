"""Koyeb-CLI-style service flags, and how they change a deployment definition (pure).

Repeatable list flags follow Koyeb's CLI on update: `VALUE` adds an item or replaces the one
with the same key (port, route path, env name, check port, region), `!KEY` removes it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import typer

from shoal.core.definition import (
    BuildpackBuilder,
    DefinitionType,
    DeploymentDefinition,
    DockerSource,
    Env,
    GitSource,
    HealthCheck,
    HTTPCheck,
    InstanceTypeChoice,
    Port,
    Route,
    Scaling,
    TCPCheck,
)

T = TypeVar("T")
DEFAULT_ROUTE_PORT = 8000  # Koyeb's CLI default for a route given without a port
DEFAULT_GIT_BRANCH = "main"
HTTP_PROTOCOLS = ("http", "http2")


class Kind(StrEnum):
    WEB = "web"
    WORKER = "worker"


def _many(flag: str, metavar: str, key: str, help: str) -> Any:
    return typer.Option(
        flag, metavar=metavar, help=f"{help} Repeatable; on update '!{key}' removes one."
    )


TypeFlag = Annotated[Kind | None, typer.Option("--type", help="web or worker (default: web)")]
DockerFlag = Annotated[
    str | None, typer.Option("--docker", metavar="IMAGE", help="Container image to run.")
]
DockerCommandFlag = Annotated[
    str | None, typer.Option("--docker-command", help="Command of the image.")
]
DockerArgsFlag = Annotated[
    list[str] | None,
    typer.Option(
        "--docker-args", help="An argument of the command (repeatable; replaces them all)."
    ),
]
DockerEntrypointFlag = Annotated[
    list[str] | None,
    typer.Option("--docker-entrypoint", help="An entrypoint word (repeatable; replaces them all)."),
]
DockerSecretFlag = Annotated[
    str | None,
    typer.Option(
        "--docker-private-registry-secret", metavar="SECRET", help="Registry secret to pull with."
    ),
]
GitFlag = Annotated[
    str | None, typer.Option("--git", metavar="REPO", help="Git repository to build.")
]
GitBranchFlag = Annotated[
    str | None,
    typer.Option("--git-branch", help=f"Branch to build (default: {DEFAULT_GIT_BRANCH})"),
]
GitWorkdirFlag = Annotated[
    str | None,
    typer.Option("--git-workdir", metavar="PATH", help="Directory of the repository to build."),
]
GitBuildCommandFlag = Annotated[
    str | None,
    typer.Option("--git-build-command", metavar="CMD", help="Run after the buildpack's build."),
]
GitRunCommandFlag = Annotated[
    str | None,
    typer.Option(
        "--git-run-command", metavar="CMD", help="What starts the app (else the Procfile's)."
    ),
]
PortsFlag = Annotated[
    list[str] | None,
    _many(
        "--ports", "PORT[:PROTOCOL]", "PORT", "Exposed port; protocol http (default), http2 or tcp."
    ),
]
RoutesFlag = Annotated[
    list[str] | None,
    _many(
        "--routes",
        "PATH[:PORT]",
        "PATH",
        "Public route; PORT defaults to the only port, else 8000.",
    ),
]
EnvFlag = Annotated[
    list[str] | None,
    _many("--env", "KEY=VALUE", "KEY", "Environment variable; VALUE may be '{{ secret.NAME }}'."),
]
RegionsFlag = Annotated[
    list[str] | None, _many("--regions", "REGION", "REGION", "Region to run in.")
]
InstanceTypeFlag = Annotated[str | None, typer.Option("--instance-type", help="Instance type.")]
MinScaleFlag = Annotated[int | None, typer.Option("--min-scale", min=0, help="Fewest instances.")]
MaxScaleFlag = Annotated[int | None, typer.Option("--max-scale", min=0, help="Most instances.")]
ChecksFlag = Annotated[
    list[str] | None,
    _many("--checks", "PORT:tcp|PORT:http:PATH", "PORT", "Health check on an exposed port."),
]


@dataclass(frozen=True)
class Flags:
    """The definition flags as given (None: not given), in the commands' order."""

    type: Kind | None = None
    docker: str | None = None
    docker_command: str | None = None
    docker_args: list[str] | None = None
    docker_entrypoint: list[str] | None = None
    docker_private_registry_secret: str | None = None
    git: str | None = None
    git_branch: str | None = None
    git_workdir: str | None = None
    git_build_command: str | None = None
    git_run_command: str | None = None
    ports: list[str] | None = None
    routes: list[str] | None = None
    env: list[str] | None = None
    regions: list[str] | None = None
    instance_type: str | None = None
    min_scale: int | None = None
    max_scale: int | None = None
    checks: list[str] | None = None


def flags_of(params: dict[str, Any]) -> Flags:
    """The definition flags among a command's parameters (Typer's `ctx.params`); the
    `--type` option's parameter is named `kind`."""
    given = {"type": params.get("kind")}
    given.update({f.name: params.get(f.name) for f in fields(Flags) if f.name != "type"})
    return Flags(**given)


def _port_number(raw: str, flag: str) -> int:
    if not raw.isdigit():
        raise typer.BadParameter(f"{raw!r} is not a port number", param_hint=flag)
    return int(raw)


def parse_port(raw: str) -> Port:
    number, _, protocol = raw.partition(":")
    return Port(port=_port_number(number, "--ports"), protocol=protocol or "http")


def parse_route(raw: str, default_port: int) -> Route:
    path, sep, port = raw.rpartition(":")
    if not sep or not port.isdigit():
        return Route(path=raw, port=default_port)
    return Route(path=path, port=int(port))


def parse_env(raw: str) -> Env:
    key, sep, value = raw.partition("=")
    if not sep or not key:
        raise typer.BadParameter(f"{raw!r} is not KEY=VALUE", param_hint="--env")
    return Env(key=key, value=value)


def parse_check(raw: str) -> HealthCheck:
    """`PORT:tcp`, `PORT:http[:PATH]`; a bare PORT is a TCP check."""
    number, _, rest = raw.partition(":")
    port = _port_number(number, "--checks")
    kind, _, path = rest.partition(":")
    if kind in ("", "tcp") and not path:
        return HealthCheck(tcp=TCPCheck(port=port))
    if kind == "http":
        return HealthCheck(http=HTTPCheck(port=port, path=path or "/"))
    raise typer.BadParameter(f"{raw!r} is not PORT:tcp or PORT:http:PATH", param_hint="--checks")


def check_port(check: HealthCheck) -> int | None:
    return check.tcp.port if check.tcp else check.http.port if check.http else None


def merged(
    current: Sequence[T] | None,
    given: Sequence[str],
    key: Callable[[T], object],
    parse: Callable[[str], T],
    removal_key: Callable[[str], object] | None = None,
) -> list[T]:
    """`current` changed by `given`: VALUE adds or replaces by key, !KEY removes."""
    items = list(current or [])
    for raw in given:
        if raw.startswith("!"):
            gone = removal_key(raw[1:]) if removal_key else key(parse(raw[1:]))
            items = [x for x in items if key(x) != gone]
        else:
            new = parse(raw)
            items = [x for x in items if key(x) != key(new)] + [new]
    return items


def _apply_source(d: DeploymentDefinition, f: Flags) -> None:
    if f.docker and f.git:
        raise typer.BadParameter(
            "a service runs an image or builds a repository, not both",
            param_hint="--docker / --git",
        )
    git_flags = (f.git, f.git_branch, f.git_workdir, f.git_build_command, f.git_run_command)
    if any(git_flags):
        d.git = d.git or GitSource()
        d.docker = None if f.git else d.docker
        d.git.repository = f.git or d.git.repository
        if f.git_branch:
            d.git.branch, d.git.tag, d.git.sha = f.git_branch, None, None
        if not (d.git.branch or d.git.tag or d.git.sha):
            d.git.branch = DEFAULT_GIT_BRANCH
        d.git.workdir = f.git_workdir or d.git.workdir
        if f.git_build_command or f.git_run_command:
            d.git.buildpack = d.git.buildpack or BuildpackBuilder()
            d.git.buildpack.build_command = f.git_build_command or d.git.buildpack.build_command
            d.git.buildpack.run_command = f.git_run_command or d.git.buildpack.run_command
    docker_flags = (
        f.docker,
        f.docker_command,
        f.docker_args,
        f.docker_entrypoint,
        f.docker_private_registry_secret,
    )
    if any(docker_flags):
        d.docker = d.docker or DockerSource()
        d.git = None if f.docker else d.git
        d.docker.image = f.docker or d.docker.image
        d.docker.command = f.docker_command or d.docker.command
        d.docker.args = f.docker_args or d.docker.args
        d.docker.entrypoint = f.docker_entrypoint or d.docker.entrypoint
        d.docker.image_registry_secret = (
            f.docker_private_registry_secret or d.docker.image_registry_secret
        )


def _apply_network(d: DeploymentDefinition, f: Flags) -> None:
    if f.ports:
        d.ports = merged(d.ports, f.ports, lambda p: p.port, parse_port)
        # Routes and checks (the API adds a TCP check per port) of a port no longer exposed
        # go with it: the API would only refuse them.
        exposed = {p.port for p in d.ports}
        d.routes = [r for r in d.routes or [] if r.port in exposed]
        d.health_checks = [c for c in d.health_checks or [] if check_port(c) in exposed]
    if f.routes:
        only = d.ports[0].port if d.ports and len(d.ports) == 1 else None
        default_port = only or DEFAULT_ROUTE_PORT
        d.routes = merged(
            d.routes, f.routes, lambda r: r.path, lambda raw: parse_route(raw, default_port)
        )
    # Koyeb's CLI (not its API): a single HTTP port with no route is routed at `/`.
    if (
        f.ports
        and d.ports
        and len(d.ports) == 1
        and not d.routes
        and d.ports[0].protocol in HTTP_PROTOCOLS
    ):
        d.routes = [Route(port=d.ports[0].port, path="/")]
    if f.checks:
        d.health_checks = merged(d.health_checks, f.checks, check_port, parse_check)


def apply(definition: DeploymentDefinition, f: Flags) -> DeploymentDefinition:
    """A copy of `definition` changed by the flags given; the flags not given change nothing."""
    d = definition.model_copy(deep=True)
    if f.type:
        d.type = DefinitionType[f.type.name]
    _apply_source(d, f)
    _apply_network(d, f)
    if f.env:
        d.env = merged(d.env, f.env, lambda e: e.key, parse_env, removal_key=lambda raw: raw)
    if f.regions:
        d.regions = merged(d.regions, f.regions, lambda r: r, lambda raw: raw)
    if f.instance_type:
        d.instance_types = [InstanceTypeChoice(scopes=[], type=f.instance_type)]
    if f.min_scale is not None or f.max_scale is not None:
        d.scalings = d.scalings or [Scaling(scopes=[])]
        for scaling in d.scalings:
            scaling.min = scaling.min if f.min_scale is None else f.min_scale
            scaling.max = scaling.max if f.max_scale is None else f.max_scale
    return d
