"""Data shipped with llmloop: the demo's domain corpus, instructions and prompts."""

from __future__ import annotations

import json
from pathlib import Path

DEMO_DIR = Path(__file__).parent / "demo"


def demo_file(name: str) -> Path:
    return DEMO_DIR / name


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def demo_texts() -> list[str]:
    """Every string in the shipped demo files: the default tokenizer's training text."""
    texts: list[str] = []
    for path in sorted(DEMO_DIR.glob("*.jsonl")):
        for row in read_jsonl(path):
            texts.extend(_strings(row))
    if not texts:
        raise FileNotFoundError(f"no demo data under {DEMO_DIR}; the package is incomplete")
    return texts


def _strings(value) -> list[str]:  # noqa: ANN001
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []
