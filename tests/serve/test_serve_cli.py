"""``llmloop serve`` argument handling (the running server is covered by test_durability)."""

from __future__ import annotations

from typer.testing import CliRunner

from llmloop.cli.main import app


def test_serve_help_and_bad_split_names_the_flag() -> None:
    runner = CliRunner()
    assert "--split" in runner.invoke(app, ["serve", "--help"]).output
    bad = runner.invoke(app, ["serve", "--split", "production=ninety"])
    assert bad.exit_code != 0 and "--split" in bad.output and "production=90,candidate=10" in bad.output
