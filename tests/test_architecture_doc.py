"""docs/architecture.md's command table stays true: every visible `llmloop <group> <verb>` is in the
row of its group, and every module the table names exists."""

from __future__ import annotations

import re
from pathlib import Path

import typer

import llmloop
from llmloop.cli.main import app

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
SRC = Path(llmloop.__file__).parent


def _rows() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    table = text.split("## Where each command lives", 1)[1]
    return [line for line in table.splitlines() if line.startswith("| `llmloop")]


def test_every_command_is_in_the_table():
    rows = _rows()
    root = typer.main.get_command(app)
    missing = []
    for group, command in root.commands.items():
        if command.hidden:
            continue
        cell = " ".join(r.split("|")[1] for r in rows if r.startswith(f"| `llmloop {group}"))
        if not cell:
            missing.append(group)
            continue
        verbs = [v for v, c in getattr(command, "commands", {}).items() if not c.hidden]
        missing += [f"{group} {v}" for v in verbs if not re.search(rf"(?<![\w-]){re.escape(v)}(?![\w-])", cell)]
    assert not missing, f"commands missing from docs/architecture.md: {missing}"


def test_the_modules_the_table_names_exist():
    named = set(re.findall(r"`((?:cli|data|train|eval|models|loop|serve|ui|demo|api)/[a-z_]+\.py)", DOC.read_text(encoding="utf-8")))
    assert named and not [m for m in named if not (SRC / m).exists()]
