"""What the votes say: per pairing wins, ties, losses and both-bad, a win rate with its interval,
position bias, and a Bradley-Terry table when more than two systems were compared.

Methods (stated in the report itself):
- Win rate = wins / (wins + losses) of the pairing's first system: decisive votes only;
  ties and both-bad are counted beside it, not in it. Its 95% interval is Wilson's score
  interval, which keeps its coverage at small counts and never leaves [0, 1].
- Votes needed: the number of decisive votes at which, if the win rate stayed what it is
  now, the Wilson interval would no longer contain 50% (an even split, "no difference").
- Position bias: of all decisive votes, the share that went to whichever answer was shown
  as A, with its Wilson interval; about 50% when the coin and the voter are fair.
- Bradley-Terry: strengths fitted to every vote by Hunter's MM algorithm, a tie counting
  half a win each way, and every pair of systems that met given one virtual tie (so a
  system that never won keeps a finite rating). Shown on the Elo scale (400 * log10,
  average 1000); 95% intervals from a bootstrap over the votes (percentiles).
"""

from __future__ import annotations

import math
import random
import textwrap
from dataclasses import asdict, dataclass, field
from typing import Sequence

from .comparisons import Comparison

Z95 = 1.959963984540054
BOOTSTRAP_SAMPLES = 1000
BOOTSTRAP_SEED = 2407  # the same votes give the same intervals every time
MAX_VOTES_NEEDED = 100_000
TEXT_WIDTH = 78  # the report's sentences fit an 80-column terminal (and the chat's report screen)

METHOD = (
    "win rate = wins / (wins + losses), decisive votes only; 95% interval: Wilson score. "
    "votes needed: decisive votes at which the Wilson interval would exclude 50% if the rate held. "
    "Bradley-Terry: MM fit, a tie = half a win each way, one virtual tie per pair that met; "
    "Elo scale (average 1000), 95% bootstrap intervals over the votes."
)


def wilson(successes: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion; (0, 1) when there is nothing to go on."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def votes_needed(rate: float) -> int | None:
    """Decisive votes at which `rate` would have a Wilson interval excluding 0.5; None at exactly 0.5."""
    if abs(rate - 0.5) < 1e-12:
        return None
    for n in range(1, MAX_VOTES_NEEDED + 1):
        low, high = wilson(rate * n, n)
        if low > 0.5 or high < 0.5:
            return n
    return None


@dataclass
class PairingTally:
    pairing: str
    first: str
    second: str
    wins: int = 0  # the first system's
    losses: int = 0
    ties: int = 0
    both_bad: int = 0
    pending: int = 0  # answered, waiting for a vote
    skipped: int = 0

    @property
    def decisive(self) -> int:
        return self.wins + self.losses

    @property
    def votes(self) -> int:
        return self.decisive + self.ties + self.both_bad

    @property
    def win_rate(self) -> float | None:
        return self.wins / self.decisive if self.decisive else None

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.wins, self.decisive)

    @property
    def votes_needed(self) -> int | None:
        return None if self.win_rate is None else votes_needed(self.win_rate)

    def as_dict(self) -> dict:
        low, high = self.interval
        return {**asdict(self), "decisive": self.decisive, "win_rate": self.win_rate,
                "interval_95": [low, high], "votes_needed": self.votes_needed}


@dataclass
class PositionBias:
    a_wins: int = 0
    b_wins: int = 0
    ties: int = 0
    both_bad: int = 0

    @property
    def a_rate(self) -> float | None:
        total = self.a_wins + self.b_wins
        return self.a_wins / total if total else None

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.a_wins, self.a_wins + self.b_wins)

    def as_dict(self) -> dict:
        return {**asdict(self), "a_rate": self.a_rate, "interval_95": list(self.interval)}


@dataclass
class Rating:
    system: str
    rating: float
    low: float
    high: float
    votes: int


@dataclass
class ArenaReport:
    pairings: list[PairingTally]
    position: PositionBias
    ratings: list[Rating] = field(default_factory=list)  # only with more than two systems
    unfinished: int = 0
    failed: int = 0

    @property
    def pending(self) -> int:
        return sum(t.pending for t in self.pairings)

    @property
    def votes(self) -> int:
        return sum(t.votes for t in self.pairings)

    def as_dict(self) -> dict:
        return {
            "method": METHOD,
            "votes": self.votes, "pending": self.pending, "unfinished": self.unfinished, "failed": self.failed,
            "pairings": [t.as_dict() for t in self.pairings],
            "position_bias": self.position.as_dict(),
            "bradley_terry": [asdict(r) for r in self.ratings],
        }


# --------------------------------------------------------------------------- building


def build_report(comparisons: Sequence[Comparison], bootstrap: int = BOOTSTRAP_SAMPLES) -> ArenaReport:
    tallies: dict[str, PairingTally] = {}
    position = PositionBias()
    games: list[tuple[str, str, float]] = []  # (system, other, first's score: 1, 0.5 or 0)
    unfinished = failed = 0
    for c in comparisons:
        if c.state == "answering":
            unfinished += 1
            continue
        if c.state == "failed":
            failed += 1
            continue
        first, _, second = c.pairing.partition(" vs ")
        tally = tallies.setdefault(c.pairing, PairingTally(c.pairing, first, second))
        if c.state == "ready":
            tally.pending += 1
            continue
        if c.state == "skipped" or c.vote is None:
            tally.skipped += 1
            continue
        if c.vote == "tie":
            tally.ties += 1
            position.ties += 1
            games.append((first, second, 0.5))
        elif c.vote == "both_bad":
            tally.both_bad += 1
            position.both_bad += 1
        else:
            won = c.system_of(c.vote)
            if won == first:
                tally.wins += 1
            else:
                tally.losses += 1
            if c.vote == "A":
                position.a_wins += 1
            else:
                position.b_wins += 1
            games.append((first, second, 1.0 if won == first else 0.0))
    systems = sorted({s for t in tallies.values() for s in (t.first, t.second)})
    ratings = bradley_terry_table(games, systems, bootstrap) if len(systems) > 2 and games else []
    return ArenaReport(list(tallies.values()), position, ratings, unfinished, failed)


def bradley_terry(games: Sequence[tuple[str, str, float]], systems: Sequence[str],
                  prior: float = 1.0, iterations: int = 1000) -> dict[str, float]:
    """Strengths on the Elo scale (400 * log10, average 1000) by Hunter's MM algorithm.

    `games`: (i, j, score of i) with score 1, 0.5 (tie) or 0. `prior` virtual ties per pair that met.
    """
    index = {s: k for k, s in enumerate(systems)}
    n = len(systems)
    wins = [0.0] * n
    meetings = [[0.0] * n for _ in range(n)]
    for a, b, score in games:
        i, j = index[a], index[b]
        wins[i] += score
        wins[j] += 1 - score
        meetings[i][j] += 1
        meetings[j][i] += 1
    if prior:
        for i in range(n):
            for j in range(n):
                if i != j and meetings[i][j]:
                    wins[i] += prior / 2
                    meetings[i][j] += prior
    played = [i for i in range(n) if any(meetings[i])]
    strength = [1.0] * n
    for _ in range(iterations):
        updated = list(strength)
        for i in played:
            denominator = sum(meetings[i][j] / (strength[i] + strength[j]) for j in range(n) if j != i)
            # Never won and no prior (prior=0 only): heads for zero; kept above it so logs stay finite.
            updated[i] = max(wins[i] / denominator, 1e-12)
        log_mean = sum(math.log(updated[i]) for i in played) / max(len(played), 1)
        updated = [s / math.exp(log_mean) for s in updated]
        change = max((abs(math.log(u / s)) for u, s in zip(updated, strength)), default=0.0)
        strength = updated
        if change < 1e-10:
            break
    return {s: 1000 + 400 * math.log10(strength[index[s]]) for s in systems if index[s] in played}


def bradley_terry_table(games, systems, bootstrap: int = BOOTSTRAP_SAMPLES) -> list[Rating]:
    fitted = bradley_terry(games, systems)
    systems = [s for s in systems if s in fitted]  # a pairing with only pending pairs has no votes yet
    rng = random.Random(BOOTSTRAP_SEED)
    samples: dict[str, list[float]] = {s: [] for s in systems}
    for _ in range(bootstrap):
        drawn = [games[rng.randrange(len(games))] for _ in games]
        # A system that drew no game in this resample has no rating in it (not a made-up 1000).
        for system, value in bradley_terry(drawn, systems, iterations=200).items():
            samples[system].append(value)
    counts = {s: sum(1 for a, b, _ in games if s in (a, b)) for s in systems}
    table = []
    for system in systems:
        values = sorted(samples[system])
        low, high = (_percentile(values, 0.025), _percentile(values, 0.975)) if values else (math.nan, math.nan)
        table.append(Rating(system, fitted[system], low, high, counts[system]))
    return sorted(table, key=lambda r: -r.rating)


def _percentile(values: list[float], q: float) -> float:
    position = q * (len(values) - 1)
    below = math.floor(position)
    above = min(below + 1, len(values) - 1)
    return values[below] + (values[above] - values[below]) * (position - below)


# --------------------------------------------------------------------------- text


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def format_report(report: ArenaReport) -> str:
    """The report as a person reads it: a table per pairing, then position bias and ratings."""
    from ..measure.text_table import format_table

    lines: list[str] = []
    if not report.pairings:
        lines += textwrap.wrap("No comparisons yet: F4 in `coolfusion chat` starts the arena, "
                               "`coolfusion arena run --prompts FILE` answers a prompt file ahead.", TEXT_WIDTH)
    else:
        rows = []
        for t in report.pairings:
            low, high = t.interval
            needed = t.votes_needed
            if t.win_rate is None:
                need_text = "-"
            elif needed is None:
                need_text = "never (even split)"
            elif needed <= t.decisive:
                need_text = f"{needed} (reached)"
            else:
                need_text = f"{needed} ({needed - t.decisive} more)"
            rows.append([t.pairing, str(t.wins), str(t.ties), str(t.losses), str(t.both_bad),
                         _pct(t.win_rate), f"[{_pct(low)}, {_pct(high)}]" if t.decisive else "-",
                         need_text, str(t.pending)])
        lines.append(format_table(
            ["pairing (first vs second)", "wins", "ties", "losses", "both bad", "win rate", "95% interval",
             "votes needed", "pending"], rows, right=(1, 2, 3, 4, 5, 8)))
    position = report.position
    if position.a_wins + position.b_wins:
        low, high = position.interval
        lines += [""] + textwrap.wrap(
            f"position bias: A won {position.a_wins} of {position.a_wins + position.b_wins} decisive votes "
            f"({_pct(position.a_rate)}, 95% interval [{_pct(low)}, {_pct(high)}]; 50% = no bias)", TEXT_WIDTH)
    if report.ratings:
        rows = [[r.system, f"{r.rating:.0f}", f"[{r.low:.0f}, {r.high:.0f}]", str(r.votes)] for r in report.ratings]
        lines += ["", "Bradley-Terry (Elo scale, average 1000)",
                  format_table(["system", "rating", "95% interval", "votes"], rows, right=(1, 3))]
    extra = []
    if report.pending:
        extra.append(f"{report.pending} answered and waiting for a vote (F4 in the chat walks them)")
    if report.unfinished:
        extra.append(f"{report.unfinished} interrupted before both answers were in "
                     "(`coolfusion arena run` finishes them)")
    if report.failed:
        extra.append(f"{report.failed} where a system could not answer")
    if extra:
        lines += [""] + [f"- {e}" for e in extra]
    lines += [""] + textwrap.wrap(f"method: {METHOD}", TEXT_WIDTH)  # the tables are never wrapped
    return "\n".join(lines)
