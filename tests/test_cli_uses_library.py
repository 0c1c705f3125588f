"""The CLI calls library functions, never the store: no ``src/llmloop/cli/*.py`` imports ``llmloop.store``.

Imports are read from the source (ast), so one inside a function counts as much as one at the top of
a file. A command that needs the database opens it with ``data.database.open_workspace_database``
and passes it to a library function (``models.registry``, ``loop.status``, ``serve.offline_admin`` …).
"""

from __future__ import annotations

import ast
from pathlib import Path

import llmloop.cli

CLI = Path(llmloop.cli.__file__).parent



def _store_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            # relative to llmloop.cli: ``from ..store import x`` and ``from .. import store`` are llmloop.store
            package = ["llmloop", "cli"][: max(0, 3 - node.level)] if node.level else []
            base = ".".join(package + ([node.module] if node.module else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        if any(n == "llmloop.store" or n.startswith("llmloop.store.") for n in names):
            found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_cli_files_import_no_store_module() -> None:
    files = sorted(CLI.glob("*.py"))
    assert len(files) > 5
    bad = [hit for path in files for hit in _store_imports(path)]
    assert not bad, "the CLI must call library functions, not the store:\n" + "\n".join(bad)


def test_the_check_sees_every_way_to_import_the_store(tmp_path: Path) -> None:
    for source in ("from llmloop.store import open_database", "import llmloop.store.registry",
                   "def f():\n    from llmloop.store.job_queue import get_job", "from ..store import traffic",
                   "from .. import store", "from llmloop import store"):
        path = tmp_path / "x.py"
        path.write_text(source)
        assert _store_imports(path), source
    path = tmp_path / "ok.py"
    path.write_text("from llmloop.models import registry\nfrom llmloop.data.database import open_workspace_database")
    assert not _store_imports(path)


def test_the_cli_starts_without_loading_torch_or_a_web_framework():
    """`llmloop --help` and every command's parsing stay fast: heavy libraries load inside commands."""
    import subprocess
    import sys

    heavy = ("torch", "transformers", "trl", "peft", "gradio", "fastapi")
    code = f"import sys, llmloop.cli.main; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
