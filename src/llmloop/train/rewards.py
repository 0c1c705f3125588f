"""GRPO reward functions (T6), in TRL's signature: ``f(completions, **columns) -> list[float]``.

``completions`` are conversational (``[[{"role": "assistant", "content": …}], …]``) or plain
strings; the dataset's other columns (``solution`` …) arrive as keyword lists, one value per
completion. User functions are named ``module:function`` in the config and loaded here.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any

RewardFn = Callable[..., list[float]]

# The final answer: an explicit marker first (\boxed{…}, "Answer: …", "答案：…", "#### …"), else the last number.
_MARKED = re.compile(r"\\boxed\{([^{}]*)\}|(?:answer|答案)\s*[:：]\s*([^\n]+)|####\s*([^\n]+)", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")


def _text(completion: Any) -> str:
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    return str(completion)


def extract_answer(text: str) -> str | None:
    """The answer a completion gives: the last marked answer, else its last number; None if neither."""
    marked = [next(g for g in m.groups() if g is not None) for m in _MARKED.finditer(text)]
    if marked:
        return marked[-1].strip().rstrip(".。")
    numbers = _NUMBER.findall(text)
    return numbers[-1] if numbers else None


def _as_number(value: str) -> float | None:
    found = _NUMBER.search(value.replace(" ", ""))
    if not found:
        return None
    token = found.group().replace(",", "")
    try:
        if "/" in token:
            num, den = token.split("/")
            return float(num) / float(den)
        return float(token)
    except (ValueError, ZeroDivisionError):
        return None


def answers_match(given: str | None, solution: str) -> bool:
    """Numbers compare as numbers (1,000 = 1000.0 = 2000/2); anything else as trimmed, case-folded text."""
    if given is None:
        return False
    expected = extract_answer(solution) or solution
    a, b = _as_number(given), _as_number(expected)
    if a is not None and b is not None:
        return abs(a - b) <= 1e-6 * max(1.0, abs(b))
    return given.strip().casefold() == expected.strip().casefold()


def answer_match(completions: list, solution: list[str] | None = None, **_: Any) -> list[float]:
    """1.0 when the completion's extracted answer equals the row's ``solution``, else 0.0."""
    if solution is None:
        raise ValueError("the answer_match reward needs a 'solution' column in the prompt dataset")
    return [1.0 if answers_match(extract_answer(_text(c)), s) else 0.0 for c, s in zip(completions, solution, strict=True)]


def format_reward(completions: list, **_: Any) -> list[float]:
    """1.0 when the completion marks its final answer (``Answer: …``, ``\\boxed{…}``, ``#### …``)."""
    return [1.0 if _MARKED.search(_text(c)) else 0.0 for c in completions]


def make_length_reward(target: int) -> RewardFn:
    def length(completions: list, **_: Any) -> list[float]:
        """1.0 at ``target`` characters, falling linearly to 0 at 0 and at twice the target."""
        return [max(0.0, 1.0 - abs(len(_text(c)) - target) / target) for c in completions]

    return length


BUILTIN = ("answer_match", "format", "length")


def load_reward(name: str, target_length: int = 200) -> RewardFn:
    """A built-in reward by name, or a user function by ``module:function``."""
    if name == "answer_match":
        return answer_match
    if name == "format":
        return format_reward
    if name == "length":
        return make_length_reward(target_length)
    module_name, _, attr = name.partition(":")
    if not module_name or not attr:
        raise ValueError(f"reward {name!r}: use one of {', '.join(BUILTIN)} or module:function")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"reward {name!r} cannot be loaded ({e}); check the module is importable and defines {attr}") from e
    if not callable(fn):
        raise ValueError(f"reward {name!r} is not a function")
    return fn
