"""`shoal deploy DIR APP/SERVICE`: build and run a working directory, like `koyeb deploy`.

The directory goes up as an archive (a gzipped tar of its files, without .git, node_modules,
vendor and, inside a git work tree, what .gitignore leaves out), then the service is created
(with its app, when missing) or updated to build from it with a buildpack.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path
from typing import Annotated

import typer

from shoal.cli.output import note, show
from shoal.cli.service_flags import (
    ChecksFlag,
    EnvFlag,
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
from shoal.cli.services import COLUMNS, wait_deployed
from shoal.cli.state import client, output
from shoal.cli.wait import DEFAULT_TIMEOUT, WaitFlag, WaitTimeout
from shoal.client.errors import ApiError
from shoal.core.definition import ArchiveSource, BuildpackBuilder, DeploymentDefinition

SKIPPED = frozenset({".git", "node_modules", "vendor"})


def files_of(directory: Path) -> list[str]:
    """The relative paths to upload: git's view of the work tree when there is one (tracked
    and untracked files, without the ignored), else every file; never under SKIPPED."""
    try:
        listed = subprocess.run(
            ["git", "-C", str(directory), "ls-files", "-z", "-co", "--exclude-standard"],
            capture_output=True,
            check=True,
        ).stdout.decode()
        names = [n for n in listed.split("\0") if n]
    except (OSError, subprocess.CalledProcessError):
        names = [
            str(Path(root, f).relative_to(directory))
            for root, dirs, found in os.walk(directory)
            for f in found
        ]
    return sorted(
        n for n in names if not SKIPPED & set(Path(n).parts) and (directory / n).is_file()
    )


def pack(directory: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in files_of(directory):
            tar.add(directory / name, arcname=name, recursive=False)
    return buf.getvalue()


def deploy(
    ctx: typer.Context,
    directory: Annotated[
        Path, typer.Argument(metavar="DIR", help="The directory to build.", file_okay=False)
    ],
    target: Annotated[str, typer.Argument(metavar="APP/SERVICE", help="Where it runs.")],
    kind: TypeFlag = None,
    build_command: Annotated[
        str | None, typer.Option("--build-command", help="Run after the buildpack's build.")
    ] = None,
    run_command: Annotated[
        str | None, typer.Option("--run-command", help="What starts the app (else the Procfile's).")
    ] = None,
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
    """Build DIR with a buildpack and run it as APP/SERVICE (both made when missing)."""
    app_name, sep, service_name = target.partition("/")
    if not sep or not app_name or not service_name:
        raise typer.BadParameter("expected APP/SERVICE", param_hint="APP/SERVICE")
    if not directory.is_dir():
        raise typer.BadParameter(f"{directory} is not a directory", param_hint="DIR")
    flags = flags_of(ctx.params)
    c = client(ctx)
    content = pack(directory)
    note(f"Uploading {directory} ({len(content)} bytes)")
    archive = c.upload_archive(content)
    source = ArchiveSource(
        id=archive["id"],
        buildpack=BuildpackBuilder(build_command=build_command, run_command=run_command)
        if build_command or run_command
        else None,
    )
    try:
        service = c.get_service(target)
    except ApiError as e:
        if e.status != 404:
            raise
        service = None
    if service is None:
        try:
            app_id = c.get_app(app_name)["id"]
        except ApiError as e:
            if e.status != 404:
                raise
            app_id = c.create_app(app_name)["id"]
        definition = apply(DeploymentDefinition(name=service_name), flags)
        definition.archive, definition.git, definition.docker = source, None, None
        service = c.create_service(app_id, definition)
    else:
        latest = c.get_deployment(service["latest_deployment_id"])
        definition = apply(DeploymentDefinition.model_validate(latest["definition"]), flags)
        definition.archive, definition.git, definition.docker = source, None, None
        service = c.update_service(service["id"], definition)
    show(output(ctx), service, COLUMNS)
    if wait:
        wait_deployed(c, service["name"], service["latest_deployment_id"], wait_timeout)
