"""Library modules have unique, explanatory names (issue 14): `grep`, tracebacks and editor tabs
name one file. `cli/` and `api/` mirror the domain packages by design (``cli/data.py`` is the
``llmloop data`` command group, ``api/data.py`` its HTTP routes), so they are left out; the few
names below are one concept seen from two layers and read well only with their package."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import llmloop

ROOT = Path(llmloop.__file__).parent
MIRRORS = {"cli", "api"}
# name -> the packages that may each hold a module of that name, and why
SHARED = {
    "config.py": {"serve", "train"},  # ServeConfig / the training stage configs
    "catalog.py": {"data", "models"},  # the dataset catalog / the model catalog
    "sessions.py": {"store", "serve"},  # session rows / the gateway's session logic over them
    "registry.py": {"store", "models"},  # the registry's tables / the registry's API above them
}


def test_library_module_names_are_unique():
    seen: dict[str, set[str]] = defaultdict(set)
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if path.name == "__init__.py" or (len(rel.parts) > 1 and rel.parts[0] in MIRRORS):
            continue
        seen[path.name].add(rel.parts[0] if len(rel.parts) > 1 else "llmloop")
    clashes = {
        name: sorted(packages)
        for name, packages in seen.items()
        if len(packages) > 1 and packages != SHARED.get(name)
    }
    assert not clashes, f"module names used in more than one package (rename one): {clashes}"


def test_no_module_shadows_a_builtin_or_stdlib_name():
    import sys

    stdlib = set(sys.stdlib_module_names) | {"round", "input", "open", "format", "type", "filter"}
    bad = sorted(
        str(p.relative_to(ROOT))
        for p in ROOT.rglob("*.py")
        if p.stem in stdlib and p.parent.name not in MIRRORS
    )
    assert not bad, f"modules named like a builtin or a standard-library module: {bad}"
