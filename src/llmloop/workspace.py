"""Where all state lives.

Everything llmloop writes — the database (SQLite by default), datasets, jobs, model versions,
reports — lives under one directory, ``LLMLOOP_HOME`` (default ``./.llmloop``). Tests isolate all
state by pointing that one variable at a temporary directory. ``LLMLOOP_DATABASE_URL`` swaps the
embedded SQLite for a server database (PostgreSQL) shared by several processes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Workspace:
    home: Path
    database_url: str

    @property
    def datasets_dir(self) -> Path:
        return self.home / "datasets"

    @property
    def jobs_dir(self) -> Path:
        return self.home / "jobs"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    def ensure(self) -> "Workspace":
        for d in (self.home, self.datasets_dir, self.jobs_dir, self.models_dir, self.reports_dir):
            d.mkdir(parents=True, exist_ok=True)
        return self


def get_workspace(home: str | os.PathLike[str] | None = None) -> Workspace:
    """The workspace named by ``home``, else ``$LLMLOOP_HOME``, else ``./.llmloop`` (created)."""
    root = Path(home or os.environ.get("LLMLOOP_HOME") or ".llmloop").expanduser().resolve()
    url = os.environ.get("LLMLOOP_DATABASE_URL") or f"sqlite:///{root / 'llmloop.db'}"
    return Workspace(home=root, database_url=url).ensure()
