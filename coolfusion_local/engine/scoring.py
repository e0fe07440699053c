"""How candidates are ranked once every model has scored them.

The paper's rule ("mean-ppl"): the lowest average perplexity across models
wins, each model's perplexity taken in its own tokens. With a weak partner
that rule lets the weak model's confident nonsense win (a 135M model paired
with a 0.5B one pulled GSM8K accuracy from 19% to 11%), because a model that
finds the other's candidate very unlikely dominates an arithmetic mean of
perplexities.

Our default ("lead-veto") keeps the paper's average but lets the lead model
(the highest `weight`, else the first listed) veto: another model's candidate
can only win where the lead itself finds it nearly as likely as its own
proposal (mean token NLL within `lead_margin`). Fusion then decides the
near-ties where the lead is unsure, and cannot drag it off course where it
is sure. Weights turn the average into a weighted one in both rules.
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
    rule: str = "lead-veto"
    # lead-veto: how much less likely (mean NLL per token, nats) the lead may
    # find another candidate than its own for that candidate to still win.
    lead_margin: float = 0.5
    # Adaptive mode accepts the lead's proposal without asking the others when
    # its mean token NLL is below this. Under lead-veto with margin m, a lead
    # whose next token has p > 1 / (1 + e^-m) (NLL < ln(1 + e^-m), 0.47 for
    # m = 0.5) would veto every other candidate anyway, so 0.4 skips only
    # rounds whose outcome was (nearly) settled: adaptive is fast at no cost.
    confident_nll: float = 0.4

    def combined(self, members: Sequence["Member"], key: Key, mean_nll: dict[str, dict[Key, float]]) -> float:
        total_weight = sum(m.weight for m in members)
        return sum(m.weight * perplexity(mean_nll[m.name][key]) for m in members) / total_weight

    def choose(
        self,
        members: Sequence["Member"],
        keys: Sequence[Key],
        mean_nll: dict[str, dict[Key, float]],
        lead: "Member | None" = None,
        lead_key: Key | None = None,
    ) -> Key:
        # min() keeps the first key on ties: proposals are in member order.
        best = min(keys, key=lambda key: self.combined(members, key, mean_nll))
        if self.rule == "lead-veto" and lead is not None and lead_key is not None and best != lead_key:
            lead_scores = mean_nll[lead.name]
            if lead_scores[best] > lead_scores[lead_key] + self.lead_margin:
                return lead_key
        return best

    def is_confident(self, proposal: "Proposal") -> bool:
        """Adaptive mode: accept the lead's proposal without asking the others."""
        total, count = proposal.own_nll()
        return count > 0 and total / count <= self.confident_nll
