"""Evaluation: pairwise win rates with confidence intervals, judges."""

from __future__ import annotations

from llmloop.errors import Unavailable, UserError


class EvalInputError(UserError, ValueError):
    """An eval input the caller must fix: an eval set, a report, a sheet, a judge spec, a model name."""


class NoBattles(EvalInputError):
    """A leaderboard asked for before any battle between two different versions (no data yet)."""

    code = "no_battles"


class MissingEvalDependency(Unavailable, ValueError):
    """An optional package an evaluation needs is not installed; the message names the pip install."""
