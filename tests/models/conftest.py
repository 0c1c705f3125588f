"""Tiny models and adapters the surgery tests share (built once per session, a few seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest
from models_helpers import make_adapter


@pytest.fixture(scope="session")
def tiny_b_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second tiny model: same tokenizer and architecture, other random weights (seed 1)."""
    from llmloop.models.tiny import TinyModelConfig, build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_b") / "model", TinyModelConfig(seed=1))


@pytest.fixture(scope="session")
def adapters(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("adapters")
    return make_adapter(tiny_model_dir, root / "a1", 1), make_adapter(tiny_model_dir, root / "a2", 2)
