"""Why samples failed, counted: the part of a report that says "12 failed: 7 timeouts, 5 HTTP 500".

Every failure in llmloop.eval is a reason string on its sample (a generation error from the engine
or endpoint, or a judge that could not give a verdict). ``summarize_failures`` groups them into a
few causes a person can act on; the full reasons stay on the samples for the drill-down.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

# first match wins; each pattern reads the reason strings the engines and judges write
_CAUSES = (
    ("timeout", re.compile(r"timeout|timed out|ReadTimeout", re.I)),
    ("HTTP 5xx", re.compile(r"HTTP 5\d\d")),
    ("HTTP 429 (rate limited)", re.compile(r"HTTP 429")),
    ("HTTP 4xx", re.compile(r"HTTP 4\d\d")),
    ("unusable judge reply (not the JSON asked for)", re.compile(r"unusable reply|no JSON object")),
    ("not an OpenAI response", re.compile(r"not an OpenAI")),
    ("connection error", re.compile(r"Connect|connection|refused|RemoteProtocolError|NetworkError", re.I)),
)


def cause(reason: str) -> str:
    """The cause of one failure: the *last* attempt's reason decides (earlier attempts were retried).
    A comparison sample whose answer could not be generated is "generation: <cause>"."""
    if reason.startswith("generation failed"):
        return "generation: " + cause(reason.removeprefix("generation failed").strip(" ()"))
    last = reason.split(" | ")[-1]
    for name, pattern in _CAUSES:
        if pattern.search(last):
            return name
    return "engine error" if last else "unknown"


def summarize_failures(reasons: Iterable[str]) -> dict[str, int]:
    """{cause: count}, most frequent first; empty when nothing failed."""
    return dict(Counter(cause(r) for r in reasons if r).most_common())


def describe(counts: dict[str, int]) -> str:
    """``"3 failed: 2 timeout, 1 HTTP 5xx"``, or ``""`` when nothing failed."""
    total = sum(counts.values())
    return f"{total} failed: " + ", ".join(f"{n} {c}" for c, n in counts.items()) if total else ""
