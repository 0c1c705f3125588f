"""What a pairwise judge returns (``Verdict``) and what a judge is (``PairwiseJudge``): the types
every judge module shares (``judges``, ``llm_judge``, ``rm_judge``), below all of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

Winner = Literal["x", "y", "tie", "failed"]  # "failed": no verdict could be had; reason says why


@dataclass(frozen=True)
class Verdict:
    winner: Winner
    reason: str = ""


class PairwiseJudge(Protocol):
    name: str

    def judge(self, messages: list[dict[str, Any]], answer_x: str, answer_y: str) -> Verdict: ...
