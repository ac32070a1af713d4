"""`shoal services ...`"""

from __future__ import annotations

from typing import Annotated

import typer

from shoal.cli import deployments, logs
from shoal.cli.output import field, note, short_id, show, when
from shoal.cli.service_flags import (
    ChecksFlag,
    DockerArgsFlag,
    DockerCommandFlag,
    DockerEntrypointFlag,
    DockerFlag,
    DockerSecretFlag,
    EnvFlag,
    GitBranchFlag,
    GitBuildCommandFlag,
    GitFlag,
    GitRunCommandFlag,
    GitWorkdirFlag,
    InstanceTypeFlag,
    MaxScaleFlag,
    MinScaleFlag,
    PortsFlag,
    RegionsFlag,
    RoutesFlag,
    TypeFlag,
    apply,
    flags_of,
)
from shoal.cli.state import client, output
from shoal.cli.wait import (
    DEFAULT_TIMEOUT,
    DELETED,
    DEPLOYED,
    PAUSED,
    WaitFlag,
    WaitTimeout,
    wait_until,
)
from shoal.client import ShoalClient
from shoal.core.definition import DeploymentDefinition

app = typer.Typer(
    name="services",
    help="Services: what runs, built from an image or a repository.",
    no_args_is_help=True,
)

ServiceArg = Annotated[str, typer.Argument(metavar="SERVICE", help="Id, short id or APP/SERVICE.")]
COLUMNS = [
    short_id(),
    short_id("APP", "app_id"),
    field("NAME", "name"),
    field("TYPE", "type"),
    field("STATUS", "status"),
    when(),
]


def wait_deployed(c: ShoalClient, name: str, deployment_id: str, timeout: float) -> None:
    wait_until(
        f"deployment {deployment_id[:8]} of {name}",
        lambda: c.get_deployment(deployment_id),
        DEPLOYED,
        timeout,
    )


@app.command()
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME")],
    app_: Annotated[str, typer.Option("--app", help="The app (name or id) it belongs to.")],
    kind: TypeFlag = None,
    docker: DockerFlag = None,
    docker_command: DockerCommandFlag = None,
    docker_args: DockerArgsFlag = None,
    docker_entrypoint: DockerEntrypointFlag = None,
    docker_private_registry_secret: DockerSecretFlag = None,
    git: GitFlag = None,
    git_branch: GitBranchFlag = None,
    git_workdir: GitWorkdirFlag = None,
    git_build_command: GitBuildCommandFlag = None,
    git_run_command: GitRunCommandFlag = None,
    ports: PortsFlag = None,
    routes: RoutesFlag = None,
    env: EnvFlag = None,
    regions: RegionsFlag = None,
    instance_type: InstanceTypeFlag = None,
    min_scale: MinScaleFlag = None,
    max_scale: MaxScaleFlag = None,
    checks: ChecksFlag = None,
    wait: WaitFlag = False,
    wait_timeout: WaitTimeout = DEFAULT_TIMEOUT,
) -> None:
    """Create a service; what the flags leave out gets Koyeb's defaults."""
    flags = flags_of(ctx.params)
    definition = apply(DeploymentDefinition(name=name), flags)  # usage errors before any call
    c = client(ctx)
    service = c.create_service(c.get_app(app_)["id"], definition)
    show(output(ctx), service, COLUMNS)
    if wait:
        wait_deployed(c, name, service["latest_deployment_id"], wait_timeout)


@app.command()
def update(
    ctx: typer.Context,
    ident: ServiceArg,
    kind: TypeFlag = None,
    docker: DockerFlag = None,
    docker_command: DockerCommandFlag = None,
    docker_args: DockerArgsFlag = None,
    docker_entrypoint: DockerEntrypointFlag = None,
    docker_private_registry_secret: DockerSecretFlag = None,
    git: GitFlag = None,
    git_branch: GitBranchFlag = None,
    git_workdir: GitWorkdirFlag = None,
    git_build_command: GitBuildCommandFlag = None,
    git_run_command: GitRunCommandFlag = None,
    ports: PortsFlag = None,
    routes: RoutesFlag = None,
    env: EnvFlag = None,
    regions: RegionsFlag = None,
    instance_type: InstanceTypeFlag = None,
    min_scale: MinScaleFlag = None,
    max_scale: MaxScaleFlag = None,
    checks: ChecksFlag = None,
    wait: WaitFlag = False,
    wait_timeout: WaitTimeout = DEFAULT_TIMEOUT,
) -> None:
    """Deploy the latest deployment's definition changed by the flags given."""
    flags = flags_of(ctx.params)
    c = client(ctx)
    service = c.get_service(ident)
    latest = c.get_deployment(service["latest_deployment_id"])
    definition = apply(DeploymentDefinition.model_validate(latest["definition"]), flags)
    service = c.update_service(service["id"], definition)
    show(output(ctx), service, COLUMNS)
    if wait:
        wait_deployed(c, service["name"], service["latest_deployment_id"], wait_timeout)


@app.command("list")
def list_(
    ctx: typer.Context,
    app_: Annotated[
        str | None, typer.Option("--app", help="Only this app's services (name or id).")
    ] = None,
) -> None:
    """List services."""
    c = client(ctx)
    app_id = c.get_app(app_)["id"] if app_ else None
    show(output(ctx), c.list_services(app_id), COLUMNS)


@app.command()
def get(ctx: typer.Context, ident: ServiceArg) -> None:
    """Show a service."""
    show(output(ctx), client(ctx).get_service(ident), COLUMNS)


@app.command()
def delete(
    ctx: typer.Context,
    ident: ServiceArg,
    wait: WaitFlag = False,
    wait_timeout: WaitTimeout = DEFAULT_TIMEOUT,
) -> None:
    """Delete a service (its instances stop first)."""
    c = client(ctx)
    service = c.get_service(ident)
    c.delete_service(service["id"])
    note(f"Service {service['name']} is being deleted")
    if wait:
        wait_until(
            f"service {service['name']}",
            lambda: c.get_service(service["id"]),
            DELETED,
            wait_timeout,
        )


@app.command()
def pause(
    ctx: typer.Context,
    ident: ServiceArg,
    wait: WaitFlag = False,
    wait_timeout: WaitTimeout = DEFAULT_TIMEOUT,
) -> None:
    """Stop a service's instances, keeping its configuration."""
    c = client(ctx)
    service = c.get_service(ident)
    c.pause_service(service["id"])
    note(f"Service {service['name']} is pausing")
    if wait:
        wait_until(
            f"service {service['name']}", lambda: c.get_service(service["id"]), PAUSED, wait_timeout
        )


@app.command()
def resume(
    ctx: typer.Context,
    ident: ServiceArg,
    wait: WaitFlag = False,
    wait_timeout: WaitTimeout = DEFAULT_TIMEOUT,
) -> None:
    """Deploy a paused service again."""
    c = client(ctx)
    service = c.get_service(ident)
    c.resume_service(service["id"])
    note(f"Service {service['name']} is resuming")
    if wait:
        resumed = c.get_service(service["id"])
        wait_deployed(c, service["name"], resumed["latest_deployment_id"], wait_timeout)


@app.command()
def redeploy(
    ctx: typer.Context,
    ident: ServiceArg,
    wait: WaitFlag = False,
    wait_timeout: WaitTimeout = DEFAULT_TIMEOUT,
) -> None:
    """Deploy the latest definition again, as a new deployment."""
    c = client(ctx)
    service = c.get_service(ident)
    deployment = c.redeploy_service(service["id"])
    show(output(ctx), deployment, deployments.COLUMNS)
    if wait:
        wait_deployed(c, service["name"], deployment["id"], wait_timeout)


app.command()(logs.logs)
