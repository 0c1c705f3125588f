"""Which version answers a user: a sticky split by user hash over weighted names.

``hash(salt, user id) → bucket in [0, 1) → name by cumulative weight``. The names are aliases or
versions (``production``, ``candidate``, ``v1.1``) and are resolved through the registry on every
request by the serving layer, so moving the ``production`` alias moves its share of traffic at once,
while each user's bucket — and so their side of the split — stays put as long as the weights do.
This module is pure: no database, no engine, no web framework.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field, field_validator

from llmloop.errors import UserError

ANONYMOUS = "anonymous"


class SplitError(UserError, ValueError):
    """A ``--split`` (NAME=WEIGHT pairs) that cannot be read or is not a valid split."""


class RoutingConfig(BaseModel):
    """How ``model="llmloop"`` (or any routing name) is split across versions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weights: dict[str, float] = Field(
        default_factory=lambda: {"production": 1.0},
        description="Alias or version name → share of traffic (normalised; order is bucket order)",
    )
    route_names: tuple[str, ...] = Field(
        ("llmloop", "auto"), description="Values of the request's `model` that mean 'route me'"
    )
    salt: str = Field("", description="Mixed into the user hash; change it to reshuffle users")

    @field_validator("weights")
    @classmethod
    def _weights(cls, v: dict[str, float]) -> dict[str, float]:
        if not v:
            raise ValueError("routing weights are empty: give at least one name, e.g. production=100")
        bad = {k: w for k, w in v.items() if w < 0}
        if bad:
            raise ValueError(f"routing weights must be >= 0, got {bad}")
        if sum(v.values()) <= 0:
            raise ValueError(f"routing weights must not all be 0, got {v}")
        return v

    @classmethod
    def from_split(cls, split: str, **kwargs: object) -> RoutingConfig:
        """Parse ``"production=90,candidate=10"`` (the CLI's ``--split``)."""
        try:
            weights = parse_weights(split)
        except ValueError as e:
            raise SplitError(
                f"--split: cannot read {str(e)!r}; write NAME=WEIGHT pairs, e.g. production=90,candidate=10"
            ) from None
        try:
            return cls(weights=weights, **kwargs)
        except ValueError as e:
            raise SplitError(f"--split {split!r}: {e}") from None

    def normalised(self) -> dict[str, float]:
        total = sum(self.weights.values())
        return {k: w / total for k, w in self.weights.items()}


def parse_weights(text: str) -> dict[str, float]:
    """``"production=90, candidate=10"`` (commas, full-width commas or new lines between pairs) → weights;
    a ValueError whose message is the part it cannot read."""
    weights: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.replace("，", ",").replace("\n", ",").split(","))):
        name, sep, value = part.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            weights[name.strip()] = float(value)
        except ValueError:
            raise ValueError(part) from None
    return weights


def bucket(user_id: str, salt: str = "") -> float:
    """A user's fixed point in [0, 1): the first 8 bytes of sha256(salt, user) over 2**64."""
    digest = hashlib.sha256(f"{salt}\x00{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def pick(config: RoutingConfig, user_id: str, resolves: Callable[[str], bool] = lambda _: True) -> str:
    """The weighted name whose cumulative range holds the user's bucket.

    A name for which ``resolves`` is false (an alias that is not set: no candidate right now) hands
    its share to the first name, so every other user keeps their side of the split.
    """
    b = bucket(user_id, config.salt)
    names = list(config.weights)
    positive = [(n, s) for n, s in config.normalised().items() if s > 0]
    chosen, acc = positive[-1][0], 0.0  # the last one also catches rounding just below 1.0
    for name, share in positive:
        acc += share
        if b < acc:
            chosen = name
            break
    if chosen != names[0] and not resolves(chosen):
        return names[0]
    return chosen
