"""Engine, connection settings and migrations.

SQLite is the embedded default and runs in WAL mode with ``synchronous=FULL``: a transaction that
returned from ``commit`` survives a killed process and a power cut, which is what lets the gateway
acknowledge feedback only once it is durable. PostgreSQL (``LLMLOOP_DATABASE_URL``) serves several
processes; its commit is durable by default.
"""

from __future__ import annotations

import datetime as dt
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection, Engine

from llmloop.workspace import Workspace, get_workspace

_MIGRATIONS = Path(__file__).parent / "migrations"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands back naive datetimes; everything we stored was UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001 - DBAPI hook signature
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


_migrated: set[str] = set()
_migrate_lock = threading.Lock()


class Database:
    """A migrated database for one workspace. Cheap to pass around; share one per process."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.url = workspace.database_url
        self.engine = make_engine(self.url)
        self.migrate()

    def migrate(self) -> None:
        with _migrate_lock:
            if self.url in _migrated:
                return
            with self.engine.begin() as conn:
                cfg = alembic_config(self.url)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "heads")
            _migrated.add(self.url)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One transaction: committed (durably) when the block exits, rolled back on error."""
        with self.engine.begin() as conn:
            yield conn

    def ping(self) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(sa.text("SELECT 1")).scalar() == 1

    def dispose(self) -> None:
        self.engine.dispose()


def open_database(workspace: Workspace | None = None) -> Database:
    return Database(workspace or get_workspace())
