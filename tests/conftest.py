"""Shared fixtures. All llmloop state goes under LLMLOOP_HOME, so one autouse fixture isolates it.

``db`` runs each test that asks for it against SQLite and, when ``LLMLOOP_TEST_POSTGRES_URL`` names a
server (``.ci/run`` sets it when one answers on 127.0.0.1:5432), against a fresh PostgreSQL database.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from llmloop.workspace import get_workspace

PG_URL = os.environ.get("LLMLOOP_TEST_POSTGRES_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])


@pytest.fixture(autouse=True)
def llmloop_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("LLMLOOP_HOME", str(home))
    monkeypatch.delenv("LLMLOOP_DATABASE_URL", raising=False)
    for name in [n for n in os.environ if n.startswith("LLMLOOP_SERVE_")]:  # `llmloop serve` reads these
        monkeypatch.delenv(name)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    return home


def _fresh_postgres_db(base_url: str) -> tuple[str, str]:
    import sqlalchemy as sa

    name = f"llmloop_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = sa.engine.make_url(base_url).set(database=name).render_as_string(hide_password=False)
    return url, name


def _drop_postgres_db(base_url: str, name: str) -> None:
    import sqlalchemy as sa

    admin = sa.create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, llmloop_home: Path, monkeypatch: pytest.MonkeyPatch):
    """A migrated, empty store: SQLite in the test's home, or a throwaway PostgreSQL database."""
    from llmloop.store import open_database

    name = None
    if request.param == "postgresql":
        url, name = _fresh_postgres_db(PG_URL)
        monkeypatch.setenv("LLMLOOP_DATABASE_URL", url)
    database = open_database(get_workspace())
    yield database
    database.dispose()
    if name:
        _drop_postgres_db(PG_URL, name)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default tiny model (tokenizer trained on the shipped demo data), built once per run."""
    from llmloop.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")
