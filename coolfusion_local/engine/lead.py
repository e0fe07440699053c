"""Which model leads a fusion: the one whose judgement the scoring rule trusts.

The lead vetoes the others' segments (lead-veto), decides alone when it is
confident (adaptive mode) and counts the answer's tokens, so it should be the
strongest model, not whichever is listed first. In order:

1. `lead = true` on a model in models.toml;
2. the highest `weight`;
3. the most parameters, counted from the GGUF's tensor shapes;
4. the larger file (a model not on disk yet: its expected download size);
5. the first listed.

Pure functions over what models.toml and the GGUF header say, so
`coolfusion models list` and the chat app's models panel name the same lead
as the engine before any model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Standing:
    """What one model's claim to lead rests on."""

    name: str
    lead: bool = False  # models.toml `lead = true`
    weight: float = 1.0
    parameters: int | None = None
    file_size: int | None = None

    def rank(self, by_parameters: bool) -> tuple:
        return (self.lead, self.weight, (self.parameters or 0) if by_parameters else 0, self.file_size or 0)


def _by_parameters(standings: Sequence[Standing]) -> bool:
    # A count is known only for a file on disk: a model not downloaded yet is
    # compared by its expected size, and so are the others then.
    return all(s.parameters for s in standings)


def choose_lead(standings: Sequence[Standing]) -> Standing:
    """The strongest; the first listed among equals (max() keeps the first)."""
    by_parameters = _by_parameters(standings)
    return max(standings, key=lambda s: s.rank(by_parameters))


def lead_reason(lead: Standing, standings: Sequence[Standing]) -> str:
    """Why `lead` leads, in a few words: the first rule that set it apart."""
    others = [s for s in standings if s is not lead]
    if not others:
        return "the only model"
    if lead.lead:
        return "lead = true in models.toml"
    if any(s.weight != lead.weight for s in others):
        return f"the highest weight ({lead.weight:g})"
    if _by_parameters(standings) and any(s.parameters != lead.parameters for s in others):
        return f"the most parameters ({human_count(lead.parameters)})"
    if lead.file_size and any((s.file_size or 0) != lead.file_size for s in others):
        return "the largest file"
    return "listed first"


def human_count(n: int | None) -> str:
    """494032768 -> "494M", 3085938688 -> "3.1B"."""
    if not n:
        return "?"
    if n >= 1e9:
        return f"{n / 1e9:.1f}B"
    if n >= 1e6:
        return f"{n / 1e6:.0f}M"
    return f"{n / 1e3:.0f}K" if n >= 1e3 else str(n)
