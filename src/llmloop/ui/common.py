"""What every tab shares: the build context (client, language, role, the relabel registry) and
small renderers (tables, a progress bar with ETA). Rendering only — no decisions about data."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llmloop.ui.client import GatewayClient, GatewayError
from llmloop.ui.i18n import t


@dataclass
class Ctx:
    client: GatewayClient
    lang0: str
    role: str | None  # the key's role at the gateway; None: the admin API refuses this client
    label: Callable[..., Any]  # L(component, i18n key, attribute="label") → component

    @property
    def annotator(self) -> bool:
        return self.role in ("annotator", "admin")

    @property
    def admin(self) -> bool:
        return self.role == "admin"

    def t(self, key: str, **fmt: Any) -> str:
        return t(key, self.lang0, **fmt)


def rows(items: list[dict[str, Any]], columns: list[str]) -> list[list[Any]]:
    """Dicts → table rows; lists and dicts become short text."""
    def cell(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return ", ".join(str(x) for x in v)
        if isinstance(v, dict):
            return ", ".join(f"{k}={x}" for k, x in v.items())
        return "" if v is None else v
    return [[cell(i.get(c)) for c in columns] for i in items]


def seconds(s: float | None) -> str:
    if s is None:
        return "?"
    s = int(round(s))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def progress_html(task: dict[str, Any] | None, lang: str) -> str:
    """A task as a bar: status, done/total, percent, ETA and its latest message."""
    if not task:
        return ""
    done, total = task.get("done") or 0, task.get("total")
    pct = 100.0 * done / total if total else (100.0 if task["status"] == "succeeded" else 0.0)
    text = t("task_line", lang, status=t(f"status_{task['status']}", lang), done=done, total=total or "?",
             pct=f"{pct:.0f}", eta=seconds(task.get("eta_s")), elapsed=seconds(task.get("elapsed_s")))
    if task.get("message"):
        text += f" · {task['message']}"
    if task.get("error"):
        text += f" · {task['error']}"
    return (f'<div class="llmloop-progress" data-status="{task["status"]}">'
            f'<progress max="100" value="{pct:.1f}" style="width:100%"></progress>'
            f"<div>{html.escape(text)}</div></div>")


def fail(e: GatewayError, lang: str, n: int = 1) -> Any:
    """A callback's outputs after the gateway refused: unchanged, with the error in the last one."""
    import gradio as gr

    msg = t("error", lang, msg=e)
    return msg if n == 1 else tuple([gr.skip()] * (n - 1) + [msg])
