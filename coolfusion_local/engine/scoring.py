"""How candidates are ranked once every model has scored them.

The paper's rule: the lowest average perplexity across models wins. Weights
per model (models.toml `weight`) turn the average into a weighted one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from .fusion import Member, Proposal

Key = tuple[bytes, bool]


def perplexity(mean_nll: float) -> float:
    return math.exp(min(mean_nll, 50.0))


@dataclass(frozen=True)
class ScorePolicy:
    # Adaptive mode accepts the first model's proposal without cross-scoring
    # when its mean token NLL is below this (0.05 ~ every token p > 0.95).
    confident_nll: float = 0.05

    def combined(self, members: Sequence["Member"], key: Key, mean_nll: dict[str, dict[Key, float]]) -> float:
        total_weight = sum(m.weight for m in members)
        return sum(m.weight * perplexity(mean_nll[m.name][key]) for m in members) / total_weight

    def choose(
        self,
        members: Sequence["Member"],
        keys: Sequence[Key],
        mean_nll: dict[str, dict[Key, float]],
        lead: "Member | None" = None,
    ) -> Key:
        # min() keeps the first key on ties: proposals are in member order.
        return min(keys, key=lambda key: self.combined(members, key, mean_nll))

    def is_confident(self, proposal: "Proposal") -> bool:
        """Adaptive mode: accept the lead's proposal without asking the others."""
        total, count = proposal.own_nll()
        return count > 0 and total / count <= self.confident_nll
