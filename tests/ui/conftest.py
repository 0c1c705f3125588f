"""Browser fixtures: a real `llmloop serve` process on the tiny model, the Gradio UI against it,
and Debian's Chromium driven by Playwright.

Without /usr/bin/chromium (or Playwright) the browser tests skip — unless
``LLMLOOP_REQUIRE_BROWSER=1`` (set by ``.ci/run``, which installs Chromium), where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llmloop.serve.process import GatewayProcess
from llmloop.store import apikeys, registry, traffic
from llmloop.store.db import Database
from llmloop.workspace import Workspace

CHROMIUM = os.environ.get("LLMLOOP_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "ui"


def _need_browser() -> None:
    missing = None
    if not shutil.which(CHROMIUM):
        missing = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    else:
        try:
            import playwright  # noqa: F401
        except ImportError:
            missing = "playwright is not installed (pip install -e '.[test]')"
    if missing:
        if os.environ.get("LLMLOOP_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser tests are required here but {missing}")
        pytest.skip(missing)


SFT_ROWS = [{"instruction": f"How do I reset device {i}?", "output": f"Hold the button on device {i} for ten seconds."}
            for i in range(12)]


@pytest.fixture(scope="module")
def ui_home(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[tuple[Path, Database]]:
    """A workspace with v1.0 (the tiny model) as production, v1.1 (the same weights, another version)
    beside it in a 50/50 traffic split and no candidate alias (the arena must still pit two different
    versions), an sft dataset ``faq``, and one API key per role (``keys``), shared by the module's tests."""
    from llmloop.data.importer import import_file

    home = tmp_path_factory.mktemp("ui_home")
    db = Database(Workspace(home=home, database_url=f"sqlite:///{home / 'llmloop.db'}").ensure())
    registry.register(db, name="v1.0", kind="chat", base_model=str(tiny_model_dir))
    registry.set_alias(db, "production", "v1.0")
    registry.register(db, name="v1.1", kind="chat", base_model=str(tiny_model_dir), parent="v1.0")
    traffic.set_split(db, {"production": 50, "v1.1": 50}, reason="A/B for the UI tests", actor="tests")
    faq = home / "faq.jsonl"
    faq.write_text("".join(json.dumps(r) + "\n" for r in SFT_ROWS), encoding="utf-8")
    import_file(db, faq, name="faq")
    yield home, db
    db.dispose()


@pytest.fixture(scope="module")
def keys(ui_home: tuple[Path, Database]) -> dict[str, str]:
    """role → API key (created before the gateway starts: auth is on). The user key acts as ``alice``."""
    _, db = ui_home
    out = {role: apikeys.create_key(db, name=f"ui-{role}", role=role)[0] for role in ("annotator", "admin")}
    out["user"] = apikeys.create_key(db, name="ui-user", role="user", user_id="alice")[0]
    return out


@pytest.fixture(scope="module")
def gateway(ui_home: tuple[Path, Database], keys: dict[str, str]) -> Iterator[str]:
    home, _ = ui_home
    env = {"LLMLOOP_DATABASE_URL": f"sqlite:///{home / 'llmloop.db'}", "OMP_NUM_THREADS": "1"}
    with GatewayProcess(home, env=env, extra_args=("--threads", "1")) as gw:
        yield gw.url


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _launch_ui(gateway: str, key: str, language: str = "en") -> Iterator[str]:
    pytest.importorskip("gradio")
    from llmloop.ui.blocks import build_ui
    from llmloop.ui.client import GatewayClient

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    client = GatewayClient(gateway, key)
    blocks = build_ui(client, default_language=language)
    port = _free_port()
    blocks.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    yield url
    blocks.close()
    client.close()


@pytest.fixture(scope="module")
def ui_url(gateway: str, keys: dict[str, str]) -> Iterator[str]:
    """The UI as an admin runs it."""
    yield from _launch_ui(gateway, keys["admin"])


@pytest.fixture(scope="module")
def annotator_ui_url(gateway: str, keys: dict[str, str]) -> Iterator[str]:
    """The UI started with an annotator key."""
    yield from _launch_ui(gateway, keys["annotator"])


@pytest.fixture(scope="module")
def user_ui_url(gateway: str, keys: dict[str, str]) -> Iterator[str]:
    """The UI started with a plain user key, in Chinese (a voter's UI)."""
    yield from _launch_ui(gateway, keys["user"], language="zh")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    _need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        yield b
        b.close()


def _open(browser, url: str):  # noqa: ANN001, ANN202
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(90_000)  # the tiny model on a busy 2-core machine
    pg.goto(url)
    pg.wait_for_selector("#tab-chat, [role=tab]")
    return context, pg


@pytest.fixture
def page(browser, ui_url: str):  # noqa: ANN001, ANN201
    context, pg = _open(browser, ui_url)
    yield pg
    context.close()


@pytest.fixture
def annotator_page(browser, annotator_ui_url: str):  # noqa: ANN001, ANN201
    context, pg = _open(browser, annotator_ui_url)
    yield pg
    context.close()


@pytest.fixture
def user_page(browser, user_ui_url: str):  # noqa: ANN001, ANN201
    context, pg = _open(browser, user_ui_url)
    yield pg
    context.close()


@pytest.fixture
def screenshot():  # noqa: ANN201
    """``screenshot(page, name)`` → docs/ui/NAME.png (the README and docs/ui.md show them)."""
    def take(page, name: str) -> None:  # noqa: ANN001
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    return take
