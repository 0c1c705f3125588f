"""Fixtures for the data tests: the LLaMA-Factory demo data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

LLAMAFACTORY_DIR = Path(os.environ.get("LLMLOOP_LLAMAFACTORY_FIXTURES", "/work/shared/fixtures/llamafactory"))


@pytest.fixture
def lf_dir() -> Path:
    """Real LLaMA-Factory ``data/`` files (see their README.md); skipped where they are absent."""
    if not (LLAMAFACTORY_DIR / "dataset_info.json").is_file():
        pytest.skip(f"LLaMA-Factory fixtures not found in {LLAMAFACTORY_DIR} (set LLMLOOP_LLAMAFACTORY_FIXTURES)")
    return LLAMAFACTORY_DIR


@pytest.fixture(autouse=True)
def _wide_data_console(monkeypatch):
    """Rich wraps at 80 columns without a terminal; messages checked by the tests stay on one line."""
    from llmloop.cli import data as data_cli

    for console in (data_cli.console, data_cli.err):
        monkeypatch.setattr(console, "_width", 400)
