"""Engine, sessions and migrations for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

MIGRATIONS = Path(__file__).parent / "migrations"


def normalize_url(url: str) -> str:
    """Accept `postgresql://` and `postgres://` and use the psycopg 3 driver for them."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'shoal.db'}"


CACHE_KIB = 256


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets readers run beside the writer; FULL makes every acknowledged commit durable.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    # A small page cache for each of the pool's connections (SQLite's default is 2 MB each:
    # 80 MB for 40 copies of the same pages, which the kernel's page cache holds anyway).
    cur.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    cur.close()


# PostgreSQL's "deadlock detected" and "could not serialize": the transaction was rolled back
# whole, and running it again is safe.
_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


def lost_a_race(exc: BaseException) -> bool:
    """Whether `exc` means a concurrent writer won and the work may simply be done again: a
    row changed under an update (its version moved on), or the database broke a deadlock."""
    if isinstance(exc, StaleDataError):
        return True
    if isinstance(exc, OperationalError):
        return getattr(exc.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES
    return False


class Database:
    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        if self.url.startswith("sqlite"):
            # As many connections as the API has worker threads: no request waits for one,
            # and none is opened (with its pragmas) per request.
            self.engine: Engine = create_engine(
                self.url, connect_args={"check_same_thread": False}, pool_size=40, max_overflow=8
            )
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_engine(self.url, pool_size=8, max_overflow=8, pool_pre_ping=True)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent)."""
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    @contextmanager
    def session(self, commit: bool = True) -> Iterator[Session]:
        """A unit of work: committed on success (unless `commit` is false: a dry run),
        rolled back on any error."""
        with self.sessions() as s:
            s.begin()
            try:
                yield s
                s.flush()
            except BaseException:
                s.rollback()
                raise
            if commit:
                s.commit()
            else:
                s.rollback()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only look at the store: one transaction (begun by the first query, so
        every query sees the same snapshot), ended by handing the connection back to the
        pool, which rolls it back. Nothing flushed, nothing committed."""
        with self.sessions() as s:
            yield s

    def rows(self) -> Connection:
        """Like `read`, for Core rows instead of ORM objects: what the busiest reads use
        (loading a Core row costs a fifth of loading an ORM object). Use it as a context
        manager."""
        return self.engine.connect()

    def dispose(self) -> None:
        self.engine.dispose()
