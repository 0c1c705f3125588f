"""Reports of an ``eval run`` (E5): the side-by-side table, JSON, CSV and one self-contained HTML page.

The HTML page holds the table, charts (PNG via matplotlib, embedded as data URIs so the file can be
mailed), the failure counts by cause, and a per-sample drill-down: prompt, reference/label,
metadata and every version's answer side by side (with its judge score or failure reason).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from llmloop.eval.failures import describe


def table_rows(report) -> list[dict[str, Any]]:  # noqa: ANN001 - eval.report.EvalRunReport
    names = sorted({k for v in report.versions for k in v.metrics})
    judged = report.judge is not None
    return [{"version": v.version, "n": v.n, "failed": v.failed, **{k: v.metrics.get(k) for k in names},
             **({"judge_failed": v.judge_failed} if judged else {}),
             "mean_latency_s": v.mean_latency_s, "tokens_per_s": v.tokens_per_s, "peak_memory_mb": v.peak_memory_mb}
            for v in report.versions]


def failure_summary(report) -> dict[str, Any]:  # noqa: ANN001
    """How many samples failed and why, per version: what a reader of the report checks first."""
    return {v.version: {"generation": {"failed": v.failed, "by_cause": v.failures},
                        **({"judge": {"failed": v.judge_failed, "by_cause": v.judge_failures}} if report.judge else {})}
            for v in report.versions}


def _groups(report):  # noqa: ANN001, ANN202
    from llmloop.eval.report import grouped_scores

    return grouped_scores(report, report.group_by)


def _clean(x: Any) -> Any:
    return None if isinstance(x, float) and math.isnan(x) else x


def write_json(report, path: Path) -> None:  # noqa: ANN001
    body = {"eval_set": report.eval_set, "judge": report.judge,
            "versions": [{k: _clean(v) for k, v in asdict(s).items()} for s in report.versions],
            "failures": failure_summary(report),
            **({"group_by": report.group_by, "groups": _groups(report)} if report.group_by else {}),
            "rows": [r.canonical() for r in report.rows],
            "samples": [asdict(s) for s in report.samples]}
    path.write_text(json.dumps(body, indent=2, ensure_ascii=False, default=str), encoding="utf-8")


def _cell(s) -> str:  # noqa: ANN001 - SampleResult
    if s.error:
        return f"[failed] {s.error}"
    return s.output


def _judge_cell(s) -> str:  # noqa: ANN001 - SampleResult
    """The rubric's mean (1–5) or the reward; the failure reason when the judge failed."""
    if s.judge:
        from llmloop.eval.llm_judge import CRITERIA

        if all(c in s.judge for c in CRITERIA):
            return f"{sum(s.judge[c] for c in CRITERIA) / len(CRITERIA):g}"
        return f"{s.judge.get('reward', '')}"
    return f"[failed] {s.judge_error}" if s.judge_error else ""


def write_csv(report, path: Path) -> Path:  # noqa: ANN001
    """The side-by-side table at ``path``; per-sample outputs next to it as ``<stem>.samples.csv``."""
    rows = table_rows(report)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    per = path.with_name(path.stem + ".samples.csv")
    by = {(s.index, s.version): s for s in report.samples}
    versions = [v.version for v in report.versions]
    judged = report.judge is not None
    with per.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["index", "prompt", "reference", "label", "metadata", *versions,
                    *([f"{v} judge" for v in versions] if judged else [])])
        for i, r in enumerate(report.rows):
            judge_cells = [_judge_cell(by[(i, v)]) for v in versions] if judged else []
            w.writerow([i, r.prompt_text, r.reference or "", r.label or "",
                        json.dumps(r.metadata, ensure_ascii=False) if r.metadata else "",
                        *[_cell(by[(i, v)]) for v in versions], *judge_cells])
    return per


def _png(fig) -> str:  # noqa: ANN001
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _charts(report) -> list[tuple[str, str]]:  # noqa: ANN001
    """(title, base64 PNG): 0–1 scores; judge scores 1–5; speed and memory."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    width = 0.8 / max(1, len(report.versions))

    def bars(names: list[str], value, title: str, ylim: tuple[float, float] | None) -> None:  # noqa: ANN001
        if not names:
            return
        fig, ax = plt.subplots(figsize=(max(4, len(names) * 1.3), 3))
        for j, v in enumerate(report.versions):
            ax.bar([i + j * width for i in range(len(names))], [value(v, k) for k in names], width, label=v.version)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(names))], names, rotation=20)
        if ylim:
            ax.set_ylim(*ylim)
        ax.set_title(title)
        ax.legend(fontsize="small")
        out.append((title, _png(fig)))

    keys = sorted({k for v in report.versions for k in v.metrics})
    unit = [k for k in keys if k != "bleu" and not k.startswith("judge_")]
    bars(unit, lambda v, k: v.metrics.get(k, 0) or 0, "scores (0–1)", (0, 1))
    bars([k for k in keys if k.startswith("judge_") and k != "judge_reward"], lambda v, k: v.metrics.get(k, 0) or 0,
         "judge scores (1–5)", (0, 5))
    bars([k for k in keys if k == "judge_reward"], lambda v, k: v.metrics.get(k, 0) or 0, "reward-model score", None)
    speed = {"tokens/s": lambda v: v.tokens_per_s, "s per answer": lambda v: v.mean_latency_s,
             "peak memory (MiB)": lambda v: v.peak_memory_mb}
    for name, get in speed.items():
        vals = [get(v) for v in report.versions]
        if all(x is None or (isinstance(x, float) and math.isnan(x)) for x in vals):
            continue
        fig, ax = plt.subplots(figsize=(max(3, len(vals) * 1.1), 2.6))
        ax.bar([v.version for v in report.versions], [0 if x is None or x != x else x for x in vals],
               color=[f"C{j}" for j in range(len(vals))])
        ax.set_title(name)
        out.append((name, _png(fig)))
    return out


def write_html(report, path: Path) -> None:  # noqa: ANN001
    rows = table_rows(report)
    esc = html.escape
    fmt = lambda x: "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}" if isinstance(x, float) else esc(str(x))  # noqa: E731
    head = "".join(f"<th>{esc(k)}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{fmt(v)}</td>" for v in r.values()) + "</tr>" for r in rows)
    fails = "".join(
        f"<li><b>{esc(v.version)}</b>: generation — {esc(describe(v.failures) or 'none failed')}"
        + (f"; judge — {esc(describe(v.judge_failures) or 'none failed')}" if report.judge else "") + "</li>"
        for v in report.versions)
    charts = "".join(f'<figure><img alt="{esc(t)}" src="data:image/png;base64,{png}"></figure>' for t, png in _charts(report))
    by = {(s.index, s.version): s for s in report.samples}
    versions = [v.version for v in report.versions]
    groups = ""
    if report.group_by:
        g = _groups(report)
        keys = sorted({k for per in g.values() for m in per.values() for k in m if k != "n"})
        groups = (f"<h2>By {esc(report.group_by)}</h2><table><tr><th>{esc(report.group_by)}</th><th>n</th><th>model</th>"
                  + "".join(f"<th>{esc(k)}</th>" for k in keys) + "</tr>"
                  + "".join(f"<tr><td>{esc(value)}</td><td>{m['n']}</td><td>{esc(v)}</td>"
                            + "".join(f"<td>{fmt(m.get(k))}</td>" for k in keys) + "</tr>"
                            for value, per in g.items() for v, m in per.items()) + "</table>")

    def answer(s) -> str:  # noqa: ANN001
        text = f'<span class="fail">[failed] {esc(s.error)}</span>' if s.error else esc(s.output)
        if s.judge:
            text += f'<div class="judge">judge: {", ".join(f"{k} {v}" for k, v in s.judge.items() if k != "reason")}' \
                    f' — {esc(str(s.judge.get("reason", "")))}</div>'
        elif s.judge_error:
            text += f'<div class="judge fail">judge failed: {esc(s.judge_error)}</div>'
        return text

    drill = "".join(
        f"<tr><td>{i}</td><td>{esc(r.prompt_text)}</td><td>{esc(r.reference or '')}"
        f"{'<br><i>label</i> ' + esc(r.label) if r.label else ''}</td>"
        f"<td><code>{esc(json.dumps(r.metadata, ensure_ascii=False)) if r.metadata else ''}</code></td>"
        + "".join(f"<td>{answer(by[(i, v)])}</td>" for v in versions) + "</tr>"
        for i, r in enumerate(report.rows))
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>llmloop eval report</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top}}
figure{{display:inline-block;margin:0 1em 1em 0}}.fail{{color:#b00}}.judge{{color:#555;font-size:small;margin-top:4px}}</style>
</head><body><h1>Evaluation: {', '.join(map(esc, versions))}</h1>
<p>eval set: {esc(report.eval_set or '–')} · {len(report.rows)} rows{' · judge: ' + esc(report.judge) if report.judge else ''}</p>
<table><tr>{head}</tr>{body}</table>
<h2>Failures</h2><ul>{fails}</ul>
{groups}
<h2>Charts</h2>{charts}
<h2>Samples</h2><table><tr><th>#</th><th>prompt</th><th>reference</th><th>metadata</th>{''.join(f'<th>{esc(v)}</th>' for v in versions)}</tr>{drill}</table>
</body></html>"""
    path.write_text(page, encoding="utf-8")
