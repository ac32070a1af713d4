"""Git deployments' builds: which node builds what, and what the node says of it.

A git deployment starts PENDING; the deployer hands it to a node of its first region
(`assign`): PROVISIONING, with a `build` stage in `provisioning_info` as in Koyeb's API. The
node's agent clones, builds in a sandbox and reports (`apply`): the stage's steps as they go,
then COMPLETED with the artifact (the deployer then runs it like an image) or FAILED, which
ends the deployment in ERROR with the reason and the last lines of the build's output; the
previous deployment keeps serving.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shoal.core.assignment import BuildJob, BuildReport, user_env
from shoal.core.definition import DeploymentDefinition
from shoal.core.enums import (
    FINAL_DEPLOYMENT_STATUSES,
    BuildStatus,
    DeploymentStatus,
    TriggerType,
)
from shoal.core.errors import NotFound
from shoal.core.regional import regional_definition
from shoal.core.status import Intent
from shoal.store import events
from shoal.store.nodes import org_secrets
from shoal.store.secretbox import SecretBox
from shoal.store.services import Trigger, new_deployment, set_deployment_status
from shoal.store.tables import Archive, Deployment, LogEntry, Service, utcnow

STAGE = "build"
FAILURE_LINES = 10  # of the build's output, in a failed deployment's messages


def _stage(status: BuildStatus, **more: Any) -> dict[str, Any]:
    return {"name": STAGE, "status": status.value, "messages": [], **more}


def _iso(when: datetime | None) -> str | None:
    return when.isoformat().replace("+00:00", "Z") if when else None


def needs_build(dep: Deployment) -> bool:
    """A git or archive deployment not built yet."""
    source = dep.definition.get("git") or dep.definition.get("archive")
    return source is not None and dep.artifact is None


def assign(s: Session, dep: Deployment, node_id: str) -> None:
    """Hand the deployment's build to a node."""
    dep.build_node_id = node_id
    dep.provisioning_info = {"stages": [_stage(BuildStatus.PENDING)]}
    set_deployment_status(s, dep, DeploymentStatus.PROVISIONING, "Building from git")


def reuse_previous(s: Session, dep: Deployment) -> bool:
    """`skip_build`: take the service's last successful build. False when there is none."""
    q = (
        select(Deployment)
        .where(Deployment.service_id == dep.service_id, Deployment.artifact.is_not(None))
        .order_by(Deployment.number.desc())
        .limit(1)
    )
    last = s.scalars(q).first()
    if last is None:
        return False
    dep.artifact = last.artifact
    dep.provisioning_info = {**last.provisioning_info}
    dep.meta = {**dep.meta, "git": last.meta.get("git", {})}
    return True


def jobs(s: Session, box: SecretBox, node_id: str) -> list[BuildJob]:
    """The builds the node should be running."""
    q = select(Deployment).where(
        Deployment.build_node_id == node_id,
        Deployment.status == DeploymentStatus.PROVISIONING.value,
        Deployment.artifact.is_(None),
    )
    out = []
    for dep in s.scalars(q.order_by(Deployment.created_at)).all():
        definition = DeploymentDefinition.model_validate(dep.definition)
        git, archive = definition.git, definition.archive
        buildpack = git.buildpack if git else archive.buildpack if archive else None
        build_command = (buildpack.build_command if buildpack else None) or (
            git.build_command if git else None
        )
        run_command = (buildpack.run_command if buildpack else None) or (
            git.run_command if git else None
        )
        region = (definition.regions or [""])[0]
        values, _ = org_secrets(s, box, dep.organization_id)
        out.append(
            BuildJob(
                deployment_id=dep.id,
                service_id=dep.service_id,
                service_type=definition.type or "WEB",
                git=git,
                archive_id=(archive.id or "") if archive else "",
                docker=git.docker if git else archive.docker if archive else None,
                build_command=build_command,
                run_command=run_command,
                env=user_env(regional_definition(definition, region), values),
                use_cache=not definition.skip_cache,
            )
        )
    return out


def apply(s: Session, node_id: str, report: BuildReport) -> str | None:
    """Record what a node says of a build it runs; returns the deployment's service id."""
    dep = s.get(Deployment, report.deployment_id)
    if dep is None or dep.build_node_id != node_id or not needs_build(dep):
        return None
    if dep.status != DeploymentStatus.PROVISIONING.value:
        return None  # canceled meanwhile: what the build says no longer matters
    steps: list[dict[str, Any]] = [
        {
            "name": st.name,
            "status": st.status.value,
            "messages": [],
            "started_at": _iso(st.started_at),
            "finished_at": _iso(st.finished_at),
        }
        for st in report.steps
    ]
    started = steps[0]["started_at"] if steps else _iso(utcnow())
    done = report.status in (BuildStatus.COMPLETED, BuildStatus.FAILED)
    attempt = {
        "id": 1,
        "status": report.status.value,
        "messages": [report.message] if report.message else [],
        "started_at": started,
        "finished_at": _iso(utcnow()) if done else None,
        "steps": steps,
        "image_pushed": report.status == BuildStatus.COMPLETED,
        "internal_failure": False,
        "retryable_failure": False,
        "wait_completion": False,
    }
    stage = _stage(
        report.status,
        messages=attempt["messages"],
        started_at=started,
        finished_at=attempt["finished_at"],
        build_attempts=[attempt],
    )
    info: dict[str, Any] = {"stages": [stage]}
    if report.sha:
        info["sha"] = report.sha
        dep.meta = {
            **dep.meta,
            "git": {
                "git_env": {
                    "sha": report.sha,
                    "commit_author": report.commit_author,
                    "commit_message": report.commit_message,
                }
            },
        }
    dep.provisioning_info = info
    if report.status == BuildStatus.COMPLETED and report.artifact is not None:
        dep.artifact = report.artifact.model_dump()
        svc = s.get(Service, dep.service_id)
        if svc is not None:
            svc.last_provisioned_deployment_id = dep.id
        events.record(
            s, dep.organization_id, "deployment", dep.id, "build", f"Built {report.sha[:7]}"
        )
    elif report.status == BuildStatus.FAILED:
        tail = _last_lines(s, dep.id)
        set_deployment_status(s, dep, DeploymentStatus.ERROR, report.message or "Build failed")
        dep.messages = [report.message or "Build failed", *tail]
    return dep.service_id


def _last_lines(s: Session, deployment_id: str) -> list[str]:
    q = (
        select(LogEntry.msg)
        .where(LogEntry.deployment_id == deployment_id, LogEntry.type == "build")
        .order_by(LogEntry.id.desc())
        .limit(FAILURE_LINES)
    )
    return list(reversed(s.scalars(q).all()))


def on_push(s: Session, svc: Service, branch: str, sha: str) -> Deployment | None:
    """A new deployment when `branch` of the service's repository moved to `sha` and the
    service tracks that branch and deploys on push; None when there is nothing to do."""
    if svc.intent != Intent.RUN.value or not svc.latest_deployment_id:
        return None
    latest = s.get(Deployment, svc.latest_deployment_id)
    if latest is None:
        return None
    definition = DeploymentDefinition.model_validate(latest.definition)
    git = definition.git
    if git is None or git.no_deploy_on_push or git.tag or git.sha or (git.branch or "") != branch:
        return None
    if needs_build(latest) and DeploymentStatus(latest.status) not in FINAL_DEPLOYMENT_STATUSES:
        return None  # not built yet: it will clone the branch as it is then
    known = {
        latest.provisioning_info.get("sha"),
        (latest.meta.get("trigger") or {}).get("git", {}).get("sha"),
    }
    if sha in known:
        return None
    pushed = {"repository": git.repository or "", "branch": branch, "sha": sha}
    trigger = Trigger(TriggerType.GIT, actor="SYSTEM", git=pushed)
    dep = new_deployment(s, svc, definition, trigger)
    events.record(
        s,
        svc.organization_id,
        "service",
        svc.id,
        "push",
        f"{branch} moved to {sha[:7]}: redeploying",
    )
    return dep


def archive_for(s: Session, node_id: str, archive_id: str) -> bytes:
    """The archive's bytes, only for a node that builds a deployment made from it."""
    q = select(Deployment.definition).where(
        Deployment.build_node_id == node_id,
        Deployment.status == DeploymentStatus.PROVISIONING.value,
    )
    wanted = {(d.get("archive") or {}).get("id") for d in s.scalars(q).all()}
    archive = s.get(Archive, archive_id) if archive_id in wanted else None
    if archive is None or archive.content is None:
        raise NotFound("archive")
    return archive.content
