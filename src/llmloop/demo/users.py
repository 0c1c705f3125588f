"""Simulated users and their hidden taste.

The users of the demo's customer-service assistant prefer answers that (1) end by offering further
help and (2) are not curt — and (3) they count gibberish (broken characters, English and Chinese
mixed in one answer) as worthless, however polite. Nobody tells the loop this: it has to learn it from their arena votes.
The same function scores held-out answers when v1.1 is judged against v1.0, so the demo measures
exactly what the users want (``python:llmloop.demo.users:preference_score`` as a judge).
"""

from __future__ import annotations

import random
import re

_OFFERS = (
    "anything else", "happy to help", "further help",
    "还有什么", "其他问题", "随时联系", "需要帮忙",
)
_CJK = re.compile(r"[\u4e00-\u9fff]")
_LATIN_WORDS = re.compile(r"[A-Za-z]{3,}[^A-Za-z\u4e00-\u9fff]+[A-Za-z]{3,}")


def has_cjk(text: str) -> bool:
    return bool(_CJK.search(text))


def offers_help(answer: str) -> bool:
    tail = answer.strip()[-60:].lower()
    return any(o in tail for o in _OFFERS)


def is_curt(answer: str) -> bool:
    text = answer.strip()
    return len(text) < (25 if _CJK.search(text) else 60)


def is_garbled(answer: str) -> bool:
    """Broken characters, or English words inside a Chinese answer (mixed-up languages)."""
    return "\ufffd" in answer or bool(_CJK.search(answer) and _LATIN_WORDS.search(answer))


def preference_score(answer: str) -> int:
    """0–3: an offer of further help at the end counts 2, not being curt counts 1; gibberish is 0."""
    if is_garbled(answer):
        return 0
    return 2 * offers_help(answer) + (not is_curt(answer))


def vote(answer_a: str, answer_b: str, rng: random.Random, noise: float = 0.05) -> str:
    """What a simulated user clicks: the preferred answer, 'tie' when equal, 'both_bad' when both
    score 0; with probability ``noise`` a random click (real users misclick)."""
    if rng.random() < noise:
        return rng.choice(["a", "b"])
    sa, sb = preference_score(answer_a), preference_score(answer_b)
    if sa == sb:
        return "both_bad" if sa == 0 else "tie"
    return "a" if sa > sb else "b"
