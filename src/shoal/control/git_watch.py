"""Deploy on push, the polling half: every interval, ask each tracked branch where it is.

Webhooks (api/routers/git_webhooks.py) deploy at once; polling catches the pushes of
repositories that cannot call the platform (no public URL, a local path) within the interval.
A service is polled when its newest deployment builds from a branch (not a tag or a commit)
and `no_deploy_on_push` is not set. `git ls-remote` fetches no objects: a poll is cheap.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from datetime import timedelta

from sqlalchemy import select

from shoal.build.git import GitError, head_of
from shoal.core.status import Intent
from shoal.store import builds
from shoal.store.db import Database
from shoal.store.tables import Deployment, Service, utcnow

log = logging.getLogger(__name__)


class GitWatch:
    def __init__(
        self, db: Database, hint: Callable[[Iterable[str]], None], interval_s: float
    ) -> None:
        self.db = db
        self.hint = hint
        self.interval = timedelta(seconds=interval_s)

    def _due(self) -> list[tuple[str, str, str]]:
        """(service id, repository, branch) of each service whose branch is due a poll."""
        due = []
        with self.db.read() as s:
            q = (
                select(Service, Deployment)
                .join(Deployment, Deployment.id == Service.latest_deployment_id)
                .where(Service.intent == Intent.RUN.value)
            )
            for svc, dep in s.execute(q).all():
                git = dep.definition.get("git")
                if not git or git.get("no_deploy_on_push") or git.get("tag") or git.get("sha"):
                    continue
                if svc.git_polled_at and svc.git_polled_at > utcnow() - self.interval:
                    continue
                due.append((svc.id, git.get("repository") or "", git.get("branch") or ""))
        return due

    def poll(self, service_id: str, repository: str, branch: str) -> None:
        try:
            sha = head_of(repository, branch)
        except GitError as e:
            log.info("polling %s for service %s: %s", repository, service_id, e)
            sha = ""
        with self.db.session() as s:
            svc = s.get(Service, service_id)
            if svc is None:
                return
            svc.git_polled_at = utcnow()
            made = builds.on_push(s, svc, branch, sha) if sha else None
        if made is not None:
            self.hint([service_id])

    async def run(self) -> None:
        tick = min(self.interval.total_seconds(), 5.0)
        while True:
            try:
                for service_id, repository, branch in await asyncio.to_thread(self._due):
                    await asyncio.to_thread(self.poll, service_id, repository, branch)
            except Exception:
                log.exception("git polling")
            await asyncio.sleep(tick)
