"""An eval run's summary: accuracy, cost and decisions per mode, as a table and as results.json."""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from .evaluate import AnswerRecord, add_counts
from .. import __version__
from ..files import replace_text
from .gsm8k import Problem
from .text_table import format_table

RESULTS_FILE = "results.json"
CUT_WARNING_SHARE = 5.0  # % of a mode's answers cut at the limit worth a warning
SHARED_DECISIONS = ("agreed", "sure", "number", "vetoed", "scored", "confident")  # the ways a fused segment is decided


@dataclass(frozen=True)
class ModeSummary:
    mode: str
    n: int
    correct: int
    mean_answer_tokens: float
    seconds_per_problem: float
    segments: int
    decisions: dict[str, int] = field(default_factory=dict)
    wins: dict[str, int] = field(default_factory=dict)
    decoded_per_problem: dict[str, float] = field(default_factory=dict)
    stop_reasons: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    chosen: dict[str, int] = field(default_factory=dict)  # cool+r: which answer it picked, how often

    @property
    def accuracy(self) -> float:
        return 100.0 * self.correct / self.n if self.n else 0.0

    @property
    def fused(self) -> bool:
        return not self.mode.startswith("solo:")

    @property
    def cut(self) -> int:
        """Answers that stopped at the token limit: graded as they stand, usually wrong."""
        return self.stop_reasons.get("max_tokens", 0)

    @property
    def cut_share(self) -> float:
        return 100.0 * self.cut / self.n if self.n else 0.0

    def decision_share(self, decision: str) -> float:
        return 100.0 * self.decisions.get(decision, 0) / self.segments if self.segments else 0.0

    def win_shares(self) -> dict[str, float]:
        return _percentages(self.wins)

    def as_dict(self) -> dict:
        data = asdict(self)
        data["accuracy"] = round(self.accuracy, 2)
        data["cut_at_limit"] = self.cut
        data["cut_share"] = round(self.cut_share, 1)
        data["mean_answer_tokens"] = round(self.mean_answer_tokens, 1)
        data["seconds_per_problem"] = round(self.seconds_per_problem, 3)
        data["decoded_per_problem"] = {k: round(v, 1) for k, v in self.decoded_per_problem.items()}
        if self.fused:
            data["decision_shares"] = {d: round(self.decision_share(d), 1) for d in (*SHARED_DECISIONS, "forced")}
            data["win_shares"] = {k: round(v, 1) for k, v in self.win_shares().items()}
        return data


def _percentages(counts: dict[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {name: 100.0 * count / total for name, count in counts.items()} if total else {}


def _shares_text(counts: dict[str, int]) -> str:
    """{"a": 3, "b": 1} -> "a 75%, b 25%", largest first; "-" when empty."""
    shares = sorted(_percentages(counts).items(), key=lambda item: -item[1])
    return ", ".join(f"{name} {share:.0f}%" for name, share in shares) or "-"


def summarize(records: Iterable[AnswerRecord], modes: Sequence[str], problems: Sequence[Problem]) -> list[ModeSummary]:
    """One summary per mode over the answers to `problems` (resumed ones included)."""
    wanted = {p.index for p in problems}
    by_mode: dict[str, list[AnswerRecord]] = {mode: [] for mode in modes}
    for record in records:
        if record.mode in by_mode and record.problem in wanted:
            by_mode[record.mode].append(record)
    summaries = []
    for mode, answers in by_mode.items():
        n = len(answers)
        decisions: dict[str, int] = {}
        wins: dict[str, int] = {}
        decoded: dict[str, int] = {}
        stops: dict[str, int] = {}
        chosen: dict[str, int] = {}
        for record in answers:
            add_counts(decisions, record.decisions)
            add_counts(wins, record.wins)
            add_counts(decoded, record.decoded_tokens)
            add_counts(stops, {record.stop_reason: 1})
            if record.chosen is not None:
                add_counts(chosen, {record.chosen: 1})
        summaries.append(ModeSummary(
            mode=mode,
            n=n,
            correct=sum(r.correct for r in answers),
            mean_answer_tokens=sum(r.answer_tokens for r in answers) / n if n else 0.0,
            seconds_per_problem=sum(r.seconds for r in answers) / n if n else 0.0,
            segments=sum(r.segments for r in answers),
            decisions=decisions,
            wins=wins,
            decoded_per_problem={k: v / n for k, v in decoded.items() if v} if n else {},
            stop_reasons=stops,
            errors=sum(r.error is not None for r in answers),
            chosen=chosen,
        ))
    return summaries


def format_summary_table(summaries: Sequence[ModeSummary]) -> str:
    """The table `coolfusion eval` prints: one row per mode."""
    headers = ["mode", "accuracy", "n", "cut", "tokens", "s/problem", *SHARED_DECISIONS, "wins"]
    rows = []
    picks = any(s.chosen for s in summaries)
    if picks:
        headers.append("cool+r picked")
    for s in summaries:
        if s.fused:
            shares = [f"{s.decision_share(d):.0f}%" for d in SHARED_DECISIONS]
            wins = _shares_text(s.wins)
        else:
            shares, wins = ["-"] * len(SHARED_DECISIONS), "-"
        row = [s.mode, f"{s.accuracy:.1f}%", str(s.n), f"{s.cut_share:.0f}%", f"{s.mean_answer_tokens:.0f}",
               f"{s.seconds_per_problem:.1f}", *shares, wins]
        if picks:
            row.append(_shares_text(s.chosen))
        rows.append(row)
    numbers = 5 + len(SHARED_DECISIONS)  # accuracy .. the last decision share
    return format_table(headers, rows, right=tuple(range(1, numbers + 1)))


def cut_warning(summaries: Sequence[ModeSummary], max_tokens: int) -> str | None:
    """One line when a mode lost answers to the token limit, which the accuracy alone hides."""
    cut = [s for s in summaries if s.cut_share >= CUT_WARNING_SHARE]
    if not cut:
        return None
    shares = ", ".join(f"{s.mode} {s.cut_share:.0f}%" for s in cut)
    return (f"answers cut at --max-tokens {max_tokens} ({shares}) are graded as they stand, most of them "
            "wrong; raise --max-tokens to measure accuracy rather than length")


def code_version() -> dict:
    """The package version, and the git commit when running from a checkout (results name their code)."""
    version: dict = {"version": __version__, "git_commit": None, "git_dirty": None}
    root = Path(__file__).resolve().parent.parent
    if (root / ".git").exists():
        try:
            commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                    text=True, timeout=5)
            status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.SubprocessError):
            return version  # no git here: the version alone
        if commit.returncode == 0:
            version["git_commit"] = commit.stdout.strip()
            version["git_dirty"] = bool(status.stdout.strip())
    return version


def write_results(folder: Path, summaries: Sequence[ModeSummary], header: dict) -> Path:
    path = Path(folder) / RESULTS_FILE
    document = {**header, "modes": [s.as_dict() for s in summaries]}
    replace_text(path, json.dumps(document, indent=2, ensure_ascii=False) + "\n")  # a crash leaves the old summary
    return path
