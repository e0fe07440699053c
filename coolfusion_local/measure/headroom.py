"""Headroom: can fusing this model set pay at all, on these problems?

A fusion led by one model can only gain where the lead is wrong and some
partner right (UniTE, arXiv 2410.03777; LLM-TOPLA, arXiv 2410.03953), so the
answers of each member alone bound what any fusion mode can do:

- each member's accuracy and its gap to the lead (in points);
- the oracle: the share of problems some member gets right;
- per partner, H = problems where the lead is wrong and the partner right (the
  most fusing with it can gain) and R = the lead right, the partner wrong (what
  trusting it could lose);
- pairwise focal diversity: for a focal model a and another b, q = P(b wrong |
  a wrong) and (1 - q) / (1 + q): 1 when b is never wrong together with a,
  0 when it always is. A pair's value is the mean over both models as the
  focal one (the ones with any wrong answer).

Only problems every member answered count. The lead is the engine's lead
(engine/lead.py: lead = true, weight, size), never simply the first listed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Iterable, Mapping, Sequence

from .text_table import format_table

FAR_APART = 10.0  # points: members further apart than this rarely gain from fusing (UniTE)


@dataclass(frozen=True)
class Member:
    name: str
    correct: int
    n: int
    gap: float  # the lead's accuracy minus this one's, in points (positive: weaker than the lead)

    @property
    def accuracy(self) -> float:
        return 100.0 * self.correct / self.n if self.n else 0.0


@dataclass(frozen=True)
class Partner:
    name: str
    helps: list[int]  # H: the lead wrong, this partner right
    hurts: list[int]  # R: the lead right, this partner wrong
    n: int

    def share(self, problems: Sequence[int]) -> float:
        return 100.0 * len(problems) / self.n if self.n else 0.0


@dataclass(frozen=True)
class Pair:
    first: str
    second: str
    q_second_given_first: float | None  # P(second wrong | first wrong); None: first never wrong
    q_first_given_second: float | None

    @property
    def diversity(self) -> float | None:
        values = [(1 - q) / (1 + q) for q in (self.q_second_given_first, self.q_first_given_second) if q is not None]
        return sum(values) / len(values) if values else None


@dataclass(frozen=True)
class Headroom:
    lead: str
    problems: list[int]
    members: list[Member]  # the lead first, then in the order given
    oracle: list[int]  # problems some member got right
    partners: list[Partner]
    pairs: list[Pair]
    verdict: str = ""
    lead_source: str = "engine"  # how the lead was known: "engine" (its rule over the config) or "recorded"

    @property
    def n(self) -> int:
        return len(self.problems)

    @property
    def lead_accuracy(self) -> float:
        return self.members[0].accuracy

    @property
    def oracle_accuracy(self) -> float:
        return 100.0 * len(self.oracle) / self.n if self.n else 0.0

    @property
    def gain_bound(self) -> float:
        """The most any fusion led by this lead can gain here, in points: the oracle over the lead."""
        return self.oracle_accuracy - self.lead_accuracy

    def reachable(self) -> set[int]:
        """Problems a fusion could win over the lead: the lead wrong, some partner right (the union of H)."""
        return {problem for partner in self.partners for problem in partner.helps}

    def pair(self, a: str, b: str) -> Pair | None:
        return next((p for p in self.pairs if {p.first, p.second} == {a, b}), None)

    def as_dict(self) -> dict:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 3)

        return {
            "lead": self.lead,
            "lead_from": self.lead_source,
            "n": self.n,
            "members": [{"name": m.name, "correct": m.correct, "n": m.n, "accuracy": round(m.accuracy, 2),
                         "gap_to_lead": round(m.gap, 2)} for m in self.members],
            "oracle": {"correct": len(self.oracle), "accuracy": round(self.oracle_accuracy, 2),
                       "over_lead": round(self.gain_bound, 2)},
            "partners": [{"name": p.name, "H": len(p.helps), "H_share": round(p.share(p.helps), 2),
                          "R": len(p.hurts), "R_share": round(p.share(p.hurts), 2),
                          "H_problems": p.helps, "R_problems": p.hurts} for p in self.partners],
            "pairs": [{"models": [p.first, p.second], "q": {f"{p.second}|{p.first}": rounded(p.q_second_given_first),
                                                             f"{p.first}|{p.second}": rounded(p.q_first_given_second)},
                       "focal_diversity": rounded(p.diversity)} for p in self.pairs],
            "verdict": self.verdict,
        }


def _q(wrong_a: set[int], wrong_b: set[int]) -> float | None:
    return len(wrong_a & wrong_b) / len(wrong_a) if wrong_a else None


def compute(correct: Mapping[str, Mapping[int, bool]], lead: str, lead_source: str = "engine") -> Headroom:
    """The headroom of the members in `correct` (name -> problem -> right?), led by `lead`."""
    if lead not in correct:
        raise ValueError(f"the lead {lead!r} has no answers")
    names = [lead, *(name for name in correct if name != lead)]
    problems = sorted(set.intersection(*(set(correct[name]) for name in names)))
    right = {name: {p for p in problems if correct[name][p]} for name in names}
    wrong = {name: set(problems) - right[name] for name in names}
    n = len(problems)
    lead_accuracy = 100.0 * len(right[lead]) / n if n else 0.0
    members = []
    for name in names:
        accuracy = 100.0 * len(right[name]) / n if n else 0.0
        members.append(Member(name, len(right[name]), n, lead_accuracy - accuracy))
    partners = [Partner(name, sorted(wrong[lead] & right[name]), sorted(right[lead] & wrong[name]), n)
                for name in names[1:]]
    pairs = [Pair(a, b, _q(wrong[a], wrong[b]), _q(wrong[b], wrong[a])) for a, b in combinations(names, 2)]
    oracle = sorted(set().union(*right.values()))
    headroom = Headroom(lead, problems, members, oracle, partners, pairs, lead_source=lead_source)
    return Headroom(lead, problems, members, oracle, partners, pairs, verdict(headroom), lead_source)


def verdict(h: Headroom) -> str:
    """One plain sentence: the most fusing can gain here, and who is too far apart to help."""
    if not h.n:
        return "no problem was answered by every member alone: no headroom to compute"
    lead = h.lead
    if not h.reachable():
        sentence = (f"fusing cannot gain over {lead} on these {h.n} problems: no other member is right "
                    f"where {lead} is wrong")
    elif len(h.partners) == 1:
        partner = h.partners[0]
        sentence = (f"fusing can gain at most {h.gain_bound:.1f} points over {lead} on these {h.n} problems "
                    f"(H: {partner.name} right where {lead} is wrong on {len(partner.helps)})")
    else:
        sentence = (f"fusing can gain at most {h.gain_bound:.1f} points over {lead} on these {h.n} problems "
                    f"(H: some partner right where {lead} is wrong on {len(h.reachable())})")
    far = [m for m in h.members[1:] if m.gap > FAR_APART]
    if far:
        sentence += "; " + ", ".join(f"{m.name} is {m.gap:.0f} points weaker" for m in far)
        sentence += " (members more than 10 points apart rarely gain)" if len(far) == len(h.partners) else ""
    stronger = [m for m in h.members[1:] if m.gap < 0]
    if stronger:
        best = min(stronger, key=lambda m: m.gap)
        sentence += (f"; {best.name} alone is {-best.gap:.1f} points above the lead here "
                     f"(`coolfusion models lead {best.name}` makes it lead)")
    return sentence


def _pct(count: int, n: int) -> str:
    return f"{count} ({100.0 * count / n:.1f}%)" if n else "0"


def format_headroom(h: Headroom) -> str:
    """The text table `eval` ends with."""
    how = {"engine": "lead by the engine's rule (lead = true, weight, size)",
           "recorded": "lead as the run recorded it"}.get(h.lead_source, f"lead: {h.lead_source}")
    lines = [f"headroom over {h.n} problems every member answered alone ({how}: {h.lead})"]
    rows = []
    for member in h.members:
        if member.name == h.lead:
            rows.append([member.name + " (lead)", f"{member.accuracy:.1f}%", "-", "-", "-", "-"])
            continue
        partner = next(p for p in h.partners if p.name == member.name)
        pair = h.pair(h.lead, member.name)
        diversity = pair.diversity if pair else None
        rows.append([member.name, f"{member.accuracy:.1f}%", f"{0.0 - member.gap:+.1f} pts",
                     _pct(len(partner.helps), h.n), _pct(len(partner.hurts), h.n),
                     "-" if diversity is None else f"{diversity:.2f}"])
    lines.append(format_table(["member", "accuracy", "gap to lead", "H: lead wrong, it right",
                               "R: lead right, it wrong", "focal diversity"], rows, right=(1, 2, 3, 4, 5)))
    if len(h.members) > 2:
        pair_rows = [[f"{p.first} / {p.second}", _q_text(p.q_second_given_first), _q_text(p.q_first_given_second),
                      "-" if p.diversity is None else f"{p.diversity:.2f}"] for p in h.pairs]
        lines.append(format_table(["pair a / b", "q = P(b wrong | a wrong)", "P(a wrong | b wrong)",
                                   "focal diversity"], pair_rows, right=(1, 2, 3)))
    lines.append(f"oracle (any member right): {h.oracle_accuracy:.1f}% ({h.gain_bound:+.1f} pts over {h.lead})")
    lines.append(f"verdict: {h.verdict}")
    return "\n".join(lines)


def _q_text(q: float | None) -> str:
    return "-" if q is None else f"{q:.2f}"


# --------------------------------------------------------------------------- from a run's answers


def solo_columns(records: Iterable, problems: Iterable[int] | None = None) -> dict[str, dict[int, bool]]:
    """name -> problem -> right?, from the solo:NAME answers among `records` (eval's AnswerRecord)."""
    wanted = None if problems is None else set(problems)
    columns: dict[str, dict[int, bool]] = {}
    for record in records:
        if record.mode.startswith("solo:") and (wanted is None or record.problem in wanted):
            columns.setdefault(record.mode.removeprefix("solo:"), {})[record.problem] = bool(record.correct)
    return columns


def recorded_lead(header: Mapping) -> str | None:
    """The lead a results.json names: a top-level "lead" (a name, "solo:NAME" or {"name": ...}), or our table's."""
    for value in (header.get("lead"), (header.get("headroom") or {}).get("lead")
                  if isinstance(header.get("headroom"), dict) else None):
        if isinstance(value, dict):
            value = value.get("name") or value.get("model")
        if isinstance(value, str) and value:
            return value.removeprefix("solo:")
    return None


@dataclass(frozen=True)
class Capture:
    """What one fused mode made of the headroom: the H problems it won, the lead's right answers it lost."""

    mode: str
    reachable: list[int]  # the union of H on the problems this mode answered too
    won: list[int]
    lost: list[int]  # the lead right, this mode wrong
    beyond: list[int] = field(default_factory=list)  # right where every member alone was wrong

    @property
    def share(self) -> float | None:
        return 100.0 * len(self.won) / len(self.reachable) if self.reachable else None

    def as_dict(self) -> dict:
        return {"mode": self.mode, "H": len(self.reachable), "won": self.won, "lost": self.lost,
                "beyond_oracle": self.beyond,
                "captured_share": None if self.share is None else round(self.share, 1)}


def capture(h: Headroom, mode: str, fused: Mapping[int, bool], lead: Mapping[int, bool]) -> Capture:
    """Which of the H problems `mode` (problem -> right?) won, on the problems it answered."""
    answered = [p for p in h.problems if p in fused]
    reachable = sorted(p for p in h.reachable() if p in fused)
    oracle = set(h.oracle)
    return Capture(
        mode=mode,
        reachable=reachable,
        won=[p for p in reachable if fused[p]],
        lost=[p for p in answered if lead[p] and not fused[p]],
        beyond=[p for p in answered if fused[p] and p not in oracle],
    )


def format_capture(captures: Sequence[Capture], lead: str) -> str:
    lines = [f"headroom captured (H: problems where {lead} alone is wrong and some partner alone right)"]
    rows = []
    for c in captures:
        share = "-" if c.share is None else f"{c.share:.0f}%"
        won = ", ".join(f"#{p}" for p in c.won) or "-"
        rows.append([c.mode, f"{len(c.won)} of {len(c.reachable)}", share, str(len(c.lost)), str(len(c.beyond)), won])
    lines.append(format_table(["mode", "H won", "captured", f"lost ({lead} right)", "right beyond the oracle",
                               "H problems won"], rows, right=(1, 2, 3, 4)))
    return "\n".join(lines)
