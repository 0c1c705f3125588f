"""docs/evaluation.md documents every `llmloop eval` command and every one of its options."""

from pathlib import Path

from typer.main import get_command

from llmloop.cli.evaluate import app

DOC = Path(__file__).parents[2] / "docs" / "evaluation.md"


def test_every_eval_command_and_option_is_documented():
    doc = DOC.read_text(encoding="utf-8")
    missing = []
    for name, cmd in get_command(app).commands.items():
        section = f"### `llmloop eval {name}`"
        if section not in doc:
            missing.append(section)
            continue
        body = doc.split(section, 1)[1].split("\n### ", 1)[0]
        for p in cmd.params:
            if p.param_type_name == "option" and p.name != "help" and f"`{p.opts[0]}" not in body:
                missing.append(f"{name} {p.opts[0]}")
    assert not missing, f"add to docs/evaluation.md (its Command reference): {missing}"
