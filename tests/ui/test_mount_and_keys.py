"""Without a browser: the UI mounts on the gateway app, and every string the UI code asks for
exists in both languages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llmloop.ui.i18n import STRINGS

UI_SRC = Path(__file__).resolve().parents[2] / "src" / "llmloop" / "ui"
# t("key" / ctx.t("key" / ctx_t("key" and L(component, "key"[, "attr"]) — every way the UI names a string
USES = re.compile(r"""(?:\bt|ctx\.t|ctx_t)\(\s*["']([a-z_]+)["']|\),\s*["']([a-z_]+)["'](?:,\s*["'](?:value|label)["'])?\)""")


def test_every_string_the_ui_uses_exists() -> None:
    used = set()
    for path in UI_SRC.glob("*.py"):
        for a, b in USES.findall(path.read_text(encoding="utf-8")):
            used.add(a or b)
    dynamic = {k for k in STRINGS if k.startswith(("status_", "role_", "vote_"))}
    assert len(used) > 100
    missing = sorted(k for k in used if k not in STRINGS and k not in ("value", "label"))
    assert not missing, missing
    assert {"status_running", "status_succeeded", "role_admin", "role_annotator", "role_none"} <= dynamic


def test_ui_mounts_on_the_gateway_app(db, tiny_model_dir) -> None:  # noqa: ANN001
    pytest.importorskip("gradio")
    from fastapi.testclient import TestClient

    from llmloop.app import create_app
    from llmloop.inference.embedded import EmbeddedEngine
    from llmloop.store import registry
    from llmloop.ui.mount import mount

    registry.register(db, name="v1.0", kind="chat", base_model=str(tiny_model_dir))
    registry.set_alias(db, "production", "v1.0")
    app = mount(create_app(db=db, engine=EmbeddedEngine(device="cpu")), gateway_url="http://127.0.0.1:9", role="admin")
    with TestClient(app) as client:
        page = client.get("/ui/")
        assert page.status_code == 200 and "gradio" in page.text.lower()
        assert client.get("/health").json() == {"status": "ok"}
        assert client.get("/api/v1/models").status_code == 401  # the API is still there, keys still needed
