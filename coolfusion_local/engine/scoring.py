"""How candidates are ranked once every model has scored them.

The paper's rule ("mean-ppl"): the lowest average perplexity across models
wins, each model's perplexity taken in its own tokens. With a weak partner
that rule lets the weak model's confident nonsense win (a 135M model paired
with a 0.5B one pulled GSM8K accuracy from 19% to 11%), because a model that
finds the other's candidate very unlikely dominates an arithmetic mean of
perplexities.

Our default ("lead-veto") keeps the paper's average but lets the lead model
(the highest `weight`, else the first listed) veto: another model's segment
can only win where the lead finds it at least as probable as the segment it
wrote itself, give or take `lead_margin` nats. Probable means the whole
segment's probability (the sum of its token NLLs), not its per-token
perplexity: per token, a partner's " 1/4" (four tokens, NLL 0.32 each for
the lead) beat the lead's own " a" (0.42), although the lead found " a"
more than twice as likely. Among the candidates the lead lets through, the
average of all models decides, as in the paper. With the default margin of 0
the partners act as proposers the lead judges; a larger margin gives them
more say, which pays only with partners about as strong as the lead. Weights
turn the average into a weighted one in both rules.

Before any of this, the lead-sure guard (guard.py) takes out the candidates
that part from the lead's segment where the lead was sure of its token, or
inside a number: those never reach the average.

Whole answers (Cool+R) differ in length by hundreds of tokens, so there the
veto compares per-token NLL: a whole answer's probability mostly measures
its length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from .members import Member, Proposal

Key = tuple[bytes, bool]
RULES = ("lead-veto", "mean-ppl")  # ScorePolicy.rule: ours (the default) and the paper's


def perplexity(mean_nll: float) -> float:
    return math.exp(min(mean_nll, 50.0))


@dataclass(frozen=True)
class ScorePolicy:
    rule: str = "lead-veto"
    # lead-veto: how much less likely (nats: total NLL of a segment, mean
    # NLL per token of a whole answer) the lead may find another candidate
    # than its own for that candidate to still win.
    lead_margin: float = 0.0
    # Adaptive mode accepts the lead's proposal without asking the others when
    # its mean token NLL is below this. Under lead-veto with margin 0, a lead
    # whose one-token proposal has p > 1/2 (NLL < 0.69) vetoes every candidate
    # that starts with another token, so 0.4 skips only rounds whose outcome
    # was (nearly) settled.
    confident_nll: float = 0.4
    # The lead-sure guard (engine/guard.py): partners may win only where the
    # lead's top-1 − top-2 probability is below sure_margin (1 turns it off),
    # and never inside a number.
    sure_margin: float = 0.15
    keep_numbers: bool = True

    @classmethod
    def from_config(cls, fusion) -> "ScorePolicy":
        """The policy models.toml's [fusion] table asks for."""
        return cls(rule=fusion.rule, lead_margin=fusion.lead_margin, confident_nll=fusion.confident_nll,
                   sure_margin=fusion.sure_margin, keep_numbers=fusion.keep_numbers)

    @property
    def label(self) -> str:
        """What decides fused answers, in one line (eval runs record it)."""
        return (f"{self.rule} lead_margin={self.lead_margin:g} confident_nll={self.confident_nll:g} "
                f"sure_margin={self.sure_margin:g} keep_numbers={str(self.keep_numbers).lower()}")

    def lead_is_sure(self, margin: float) -> bool:
        """Whether a lead this sure of a token keeps it whatever the partners say."""
        return margin >= self.sure_margin

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
        lead_totals: dict[Key, float] | None = None,
    ) -> Key:
        """The winning key. `lead_totals`: the lead's total NLL of each segment,
        which its veto compares; without them (whole answers) it compares mean NLL."""
        # A stable sort keeps the first key on ties: proposals are in member order.
        ranked = sorted(keys, key=lambda key: self.combined(members, key, mean_nll))
        if self.rule == "lead-veto" and lead is not None and lead_key is not None:
            # The best candidate the lead lets through: with three models a vetoed best
            # falls back to the next one that passes, not straight to the lead's own.
            lead_scores = lead_totals if lead_totals is not None else mean_nll[lead.name]
            return next((key for key in ranked
                         if key == lead_key or not self._lead_vetoes(lead_scores[key], lead_scores[lead_key])),
                        lead_key)
        return ranked[0]

    def vetoed_for_sure(self, lead_total_at_least: float, lead_own_total: float) -> bool:
        """Whether the lead vetoes a segment whose total NLL for it is at least
        `lead_total_at_least`, whatever the other models think of it."""
        return self.rule == "lead-veto" and self._lead_vetoes(lead_total_at_least, lead_own_total)

    def _lead_vetoes(self, lead_score: float, lead_own_score: float) -> bool:
        # choose() and vetoed_for_sure() must agree exactly: fusion skips scoring on the latter.
        return lead_score > lead_own_score + self.lead_margin

    def is_confident(self, proposal: "Proposal") -> bool:
        """Adaptive mode: accept the lead's proposal without asking the others."""
        total, count = proposal.own_nll()
        return count > 0 and total / count <= self.confident_nll
