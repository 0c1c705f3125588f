"""What every tab shares: the build context (client, language, role, the relabel registry) and
small renderers (tables, a progress bar with ETA). Rendering only — no decisions about data."""

from __future__ import annotations

import html
import re
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

    tables: list[tuple[Any, list[str]]] | None = None  # (Dataframe, its columns): relabelled on a language switch
    reloads: list[tuple[Callable[[str], Any], list[Any]]] | None = None  # (load(lang), outputs): rerun on a switch

    def t(self, key: str, **fmt: Any) -> str:
        return t(key, self.lang0, **fmt)

    def on_switch(self, load: Callable[[str], Any], outputs: list[Any]) -> tuple[Callable[[], Any], list[Any]]:
        """Register ``load(lang)`` to redraw ``outputs`` when the language changes; returns the page-load pair."""
        if self.reloads is not None:
            self.reloads.append((load, outputs))
        return (lambda: load(self.lang0)), outputs

    def frame(self, columns: list[str], i18n_key: str, **kwargs: Any) -> Any:
        """A read-only table whose label and headers follow the page's language."""
        import gradio as gr

        component = self.label(gr.Dataframe(value=empty_table(columns, self.lang0), label=self.t(i18n_key),
                                            interactive=False, **kwargs), i18n_key)
        if self.tables is not None:
            self.tables.append((component, columns))
        return component


_ISO = re.compile(r"(\d{4}-\d\d-\d\d)T(\d\d:\d\d)(?::\d\d(?:\.\d+)?)?(?:\+00:00|Z)?")


def short_times(text: str) -> str:
    """ISO timestamps as "2026-12-06 03:40" (UTC, to the minute): what a person reads."""
    return _ISO.sub(r"\1 \2", text)


def rows(items: list[dict[str, Any]], columns: list[str]) -> list[list[Any]]:
    """Dicts → table rows; lists and dicts become short text, timestamps to the minute."""
    def cell(v: Any) -> Any:
        if isinstance(v, str):
            return short_times(v)
        if isinstance(v, (list, tuple)):
            return ", ".join(str(x) for x in v)
        if isinstance(v, dict):
            return ", ".join(f"{k}={x}" for k, x in v.items())
        return "" if v is None else v
    return [[cell(i.get(c)) for c in columns] for i in items]


def table(items: list[dict[str, Any]], columns: list[str], lang: str, *, numbers: int | None = None) -> Any:
    """Dicts → a pandas frame whose headers are in ``lang`` (``col_<name>`` in ``ui/i18n.py``); floats
    rounded to ``numbers`` places when given. Gradio takes the headers from the frame, so a table
    shown in Chinese keeps Chinese headers when it is refreshed."""
    import pandas as pd

    data = rows(items, columns)
    if numbers is not None:
        data = [[round(v, numbers) if isinstance(v, float) else v for v in r] for r in data]
    return pd.DataFrame(data, columns=[header(c, lang) for c in columns])


def header(column: str, lang: str) -> str:
    from llmloop.ui.i18n import STRINGS

    key = f"col_{column}"
    return t(key, lang) if key in STRINGS else column.replace("_", " ")


def relabel_frame(frame: Any, columns: list[str], lang: str) -> Any:
    """A table already on the page, its headers put into ``lang`` (the language switch)."""
    import pandas as pd

    if not isinstance(frame, pd.DataFrame) or len(frame.columns) != len(columns):
        return pd.DataFrame([], columns=[header(c, lang) for c in columns])
    out = frame.copy()
    out.columns = [header(c, lang) for c in columns]
    return out


def empty_table(columns: list[str], lang: str) -> Any:
    import pandas as pd

    return pd.DataFrame([], columns=[header(c, lang) for c in columns])


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
        from llmloop.ui.error_text import for_page

        text += f" · {for_page(str(task['error']), lang)}"
    return (f'<div class="llmloop-progress" data-status="{task["status"]}">'
            f'<progress max="100" value="{pct:.1f}" style="width:100%"></progress>'
            f"<div>{html.escape(text)}</div></div>")


def fail(e: GatewayError, lang: str, n: int = 1) -> Any:
    """A callback's outputs after the gateway refused: unchanged, with the error in the last one."""
    import gradio as gr

    from llmloop.ui.error_text import error_text

    msg = error_text(e, lang)
    return msg if n == 1 else tuple([gr.skip()] * (n - 1) + [msg])


def facts(pairs: list[tuple[str, Any]], lang: str) -> str:
    """(i18n key, value) pairs as a two-column Markdown table in ``lang`` — what the page showed as
    raw JSON before (English keys, server paths)."""
    def cell(v: Any) -> str:
        if v is None or v == "":
            return "—"
        if isinstance(v, float):
            v = f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
        if isinstance(v, dict):
            v = ", ".join(f"{k}: {cell(x)}" for k, x in v.items())
        if isinstance(v, (list, tuple)):
            v = ", ".join(str(x) for x in v)
        return html.escape(short_times(str(v))).replace("|", "\\|").replace("\n", " ")
    lines = [f"| {t('facts_what', lang)} | {t('facts_value', lang)} |", "|---|---|"]
    lines += [f"| {t(key, lang)} | {cell(v)} |" for key, v in pairs]
    return "\n".join(lines)
