"""Pairwise judges: decide which of two answers to the same conversation is better.

A judge is anything with ``name`` and ``judge(messages, answer_x, answer_y) -> Verdict``. Shipped:
``ScoreJudge`` turns a pointwise scoring function (higher is better) into a pairwise judge, and
``load_judge("python:package.module:function")`` loads such a function by import path, so a team's
own rubric plugs in without touching llmloop. Judges never see which version wrote which answer.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from llmloop.eval import EvalInputError
from llmloop.eval.verdict import PairwiseJudge, Verdict, Winner  # noqa: F401 - re-exported


class ScoreJudge:
    """Pairwise from pointwise: the answer with the higher score wins; equal scores tie."""

    def __init__(self, score: Callable[[str], float], name: str | None = None) -> None:
        self.score = score
        self.name = name or getattr(score, "__qualname__", "score")

    def judge(self, messages: list[dict[str, Any]], answer_x: str, answer_y: str) -> Verdict:
        sx, sy = self.score(answer_x), self.score(answer_y)
        winner: Winner = "x" if sx > sy else "y" if sy > sx else "tie"
        return Verdict(winner, f"score {sx:g} vs {sy:g}")


def load_judge(spec: str, api_key_env: str | None = None, templates: str | None = None,
               timeout_s: float = 60.0, attempts: int = 3) -> PairwiseJudge:
    """``python:pkg.module:function`` → ``ScoreJudge`` over that function (str → number);
    ``rm:/path/to/reward_model`` → ``RewardModelJudge`` (a T4 reward model or its adapter);
    ``openai:MODEL@BASE_URL`` → ``LLMJudge`` (pairwise, both orders) at any OpenAI-compatible endpoint.
    The keyword arguments apply to the LLM judge only (key from an environment variable, a
    templates YAML, per-request timeout, tries per judgement)."""
    kind, _, target = spec.partition(":")
    if kind == "openai":
        from llmloop.eval.llm_judge import llm_judge_from_spec

        return llm_judge_from_spec(spec, api_key_env=api_key_env, templates=templates, timeout_s=timeout_s,
                                   attempts=attempts)
    if kind == "rm" and target:
        from llmloop.eval.rm_judge import RewardModelJudge

        return RewardModelJudge(target)
    if kind != "python" or ":" not in target:
        raise EvalInputError(
            f"judge {spec!r} is not understood: use 'python:package.module:function' naming a "
            "function that scores one answer (higher is better), 'rm:/path/to/reward_model', or "
            "'openai:MODEL@BASE_URL' (an LLM judge at any OpenAI-compatible endpoint)"
        )
    module_name, _, attr = target.partition(":")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise EvalInputError(f"judge {spec!r}: cannot import {attr!r} from {module_name!r} ({e})") from e
    if not callable(fn):
        raise EvalInputError(f"judge {spec!r}: {module_name}.{attr} is not callable")
    return ScoreJudge(fn, name=spec)
