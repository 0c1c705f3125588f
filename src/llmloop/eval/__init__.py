"""Evaluation: pairwise win rates with confidence intervals, judges."""
