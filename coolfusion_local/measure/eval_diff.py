"""`eval diff`: a finished (or stopped) run folder read back as a paired comparison.

Each fused mode is set against one solo mode (the lead's, unless asked) on
the problems both answered: how often both were right, both wrong, only one
of them, the difference with a bootstrap interval (paired.py), and for every
problem where the two part in correctness, the first segment of the fused
answer whose text leaves the solo answer, with the rule that chose it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ..engine.guard import common_prefix
from ..errors import CoolfusionError
from .eval_report import RESULTS_FILE
from .evaluate import ANSWERS_FILE, AnswerLog, AnswerRecord
from .paired import DEFAULT_RESAMPLES, DEFAULT_SEED, PairedCounts, bootstrap_interval, paired_counts
from .text_table import format_table

NOT_RECORDED = "segment decisions are not recorded in this run (made before eval kept them)"
_SHOWN_CHARS = 70  # of a segment or candidate in the text report


@dataclass(frozen=True)
class RunFolder:
    """What `eval diff` needs from a run folder: its answers, mode order and lead."""

    path: Path
    records: list[AnswerRecord]
    modes: list[str]  # results.json's order, then any other mode the answers hold
    lead: str | None  # "solo:NAME" of the run's lead (run_lead)
    header: dict

    def by_mode(self, mode: str) -> dict[int, AnswerRecord]:
        return {record.problem: record for record in self.records if record.mode == mode}


def read_run(folder: Path) -> RunFolder:
    folder = Path(folder)
    if not folder.is_dir():
        raise CoolfusionError(f"{folder} is not a folder; pass the --out folder of a `coolfusion eval` run",
                              exit_code=2)
    if not (folder / ANSWERS_FILE).exists():
        raise CoolfusionError(f"{folder} has no {ANSWERS_FILE}: not a `coolfusion eval` run folder", exit_code=2)
    records = AnswerLog(folder).read(repair=False)
    header: dict = {}
    results = folder / RESULTS_FILE
    if results.exists():
        try:
            header = json.loads(results.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            header = {}  # the answers are what counts; the summary is rewritten at each run's end
        if not isinstance(header, dict):
            raise CoolfusionError(
                f"{results} holds a JSON {type(header).__name__}, not an eval summary (an object); "
                "delete it (the answers are in answers.jsonl) or run the same eval again to rewrite it",
                exit_code=2)
    listed = header.get("modes")
    modes = [m["mode"] for m in (listed if isinstance(listed, list) else [])
             if isinstance(m, dict) and isinstance(m.get("mode"), str)]
    for record in records:
        if record.mode not in modes:
            modes.append(record.mode)
    return RunFolder(path=folder, records=records, modes=modes, lead=run_lead(header, records), header=header)


def run_lead(header: dict, records: Sequence[AnswerRecord]) -> str | None:
    """"solo:NAME" of the model the run's fusion led with.

    The engine picks its lead by `lead = true`, weight, then size, not by
    order, so runs record it (results.json's "lead", each answer's "lead").
    Runs made before that name only their models: the first listed was the
    lead then, unless a config said otherwise.
    """
    lead = header.get("lead")
    if not isinstance(lead, str):
        lead = next((record.lead for record in records if isinstance(record.lead, str)), None)
    if lead is None:
        models = header.get("models")
        if isinstance(models, list) and models and isinstance(models[0], str):
            lead = models[0]
    return f"solo:{lead}" if lead else None


# --------------------------------------------------------------------------- where two answers part


def parting_segment(fused: AnswerRecord, baseline: AnswerRecord) -> dict:
    """The first segment of `fused` whose text leaves `baseline`'s answer, or a note saying why there is none."""
    if fused.chosen not in (None, "fused"):
        return {"note": f"{fused.mode} picked {fused.chosen}'s own answer, not the fused one"}
    if fused.segment_log is None:
        return {"note": NOT_RECORDED}
    segments = fused.segment_log
    if not segments:
        return {"note": "the fused answer has no segments"}
    fused_text = "".join(segment["text"] for segment in segments)
    parted_at = common_prefix(fused_text, baseline.text)
    start = 0
    for index, segment in enumerate(segments):
        end = start + len(segment["text"])
        if end > parted_at:
            break
        start = end
    else:
        # The fused answer is all a prefix of the baseline's: it ended where the baseline went on.
        index, segment = len(segments) - 1, segments[-1]
        start = len(fused_text) - len(segment["text"])
    shown = max(len(segment["text"]), 40)
    part = {
        "segment": index,
        "segments": len(segments),
        "decision": segment.get("decision"),
        "winner": segment.get("winner"),
        "text": segment["text"],
        "baseline_text": baseline.text[start:start + shown],
        "offset": start,
    }
    for key in ("forced", "candidates", "scores", "lead_margins"):
        if key in segment:
            part[key] = segment[key]
    if parted_at == len(fused_text) and parted_at < len(baseline.text):
        part["note"] = f"the fused answer ended ({fused.stop_reason}) where the baseline went on"
    return part


# --------------------------------------------------------------------------- the comparison


@dataclass(frozen=True)
class Comparison:
    mode: str
    against: str
    counts: PairedCounts
    interval: tuple[float, float] | None
    differing: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        counts = self.counts
        return {
            "mode": self.mode,
            "against": self.against,
            "n": counts.n,
            "both_right": counts.both_right,
            "both_wrong": counts.both_wrong,
            "mode_only_right": counts.mode_only,
            "against_only_right": counts.baseline_only,
            "difference": round(counts.difference, 2),
            "interval_95": None if self.interval is None else [round(v, 2) for v in self.interval],
            "differing": self.differing,
        }


def choose_baseline(run: RunFolder, against: str | None) -> str:
    if against is not None:
        if against not in run.modes:
            known = ", ".join(run.modes) or "none"
            raise CoolfusionError(f"--against {against}: this run has no such mode (it has {known})", exit_code=2)
        return against
    if run.lead in run.modes:
        return run.lead
    solos = [mode for mode in run.modes if mode.startswith("solo:")]
    if len(solos) == 1:
        return solos[0]
    if not solos:
        raise CoolfusionError("this run has no solo:NAME mode to compare the fusion modes with; "
                              "run eval with --modes solo:LEAD,... or pass --against MODE", exit_code=2)
    raise CoolfusionError(f"this run names no lead (no results.json); pass --against, one of {', '.join(solos)}",
                          exit_code=2)


def compare(run: RunFolder, mode: str, against: str, resamples: int = DEFAULT_RESAMPLES,
            seed: int = DEFAULT_SEED) -> Comparison:
    """`mode` against `against` on the problems both answered, in problem order."""
    ours, theirs = run.by_mode(mode), run.by_mode(against)
    problems = sorted(set(ours) & set(theirs))
    mode_column = [ours[p].correct for p in problems]
    against_column = [theirs[p].correct for p in problems]
    differing = []
    for problem in problems:
        fused, baseline = ours[problem], theirs[problem]
        if fused.correct == baseline.correct:
            continue
        differing.append({
            "problem": problem,
            "right": mode if fused.correct else against,
            "gold": fused.gold,
            "answers": {mode: fused.extracted, against: baseline.extracted},
            "stop_reasons": {mode: fused.stop_reason, against: baseline.stop_reason},
            "parting": parting_segment(fused, baseline),
        })
    return Comparison(mode=mode, against=against, counts=paired_counts(mode_column, against_column),
                      interval=bootstrap_interval(mode_column, against_column, resamples, seed), differing=differing)


@dataclass(frozen=True)
class DiffReport:
    run: RunFolder
    against: str
    accuracy: list[dict]  # per mode: mode, n, correct, accuracy
    comparisons: list[Comparison]
    resamples: int
    seed: int

    def as_dict(self) -> dict:
        header = self.run.header
        return {
            "run": str(self.run.path),
            "benchmark": header.get("benchmark"),
            "offset": header.get("offset"),
            "limit": header.get("limit"),
            "max_tokens": header.get("max_tokens"),
            "fusion_rule": header.get("fusion_rule"),
            "against": self.against,
            "bootstrap": {"resamples": self.resamples, "seed": self.seed, "confidence": 95},
            "modes": self.accuracy,
            "comparisons": [c.as_dict() for c in self.comparisons],
        }


def diff_run(folder: Path, against: str | None = None, resamples: int = DEFAULT_RESAMPLES,
             seed: int = DEFAULT_SEED) -> DiffReport:
    run = read_run(folder)
    if not run.records:
        raise CoolfusionError(f"{folder}/{ANSWERS_FILE} holds no answers yet", exit_code=2)
    baseline = choose_baseline(run, against)
    accuracy = []
    for mode in run.modes:
        answers = run.by_mode(mode).values()
        correct = sum(record.correct for record in answers)
        accuracy.append({"mode": mode, "n": len(answers), "correct": correct,
                         "accuracy": round(100.0 * correct / len(answers), 2) if answers else 0.0})
    compared = [mode for mode in run.modes if mode != baseline and not mode.startswith("solo:")]
    comparisons = [compare(run, mode, baseline, resamples, seed) for mode in compared]
    return DiffReport(run=run, against=baseline, accuracy=accuracy, comparisons=comparisons,
                      resamples=resamples, seed=seed)


# --------------------------------------------------------------------------- the text report


def _quote(text: str | None, width: int = _SHOWN_CHARS) -> str:
    if text is None:
        return "-"
    shown = json.dumps(text, ensure_ascii=False)
    return shown if len(shown) <= width else shown[: width - 2] + '…"'


def _points(value: float) -> str:
    return f"{value:+.1f}"


def _describe_run(report: DiffReport) -> str:
    header = report.run.header
    parts = []
    if header.get("benchmark"):
        parts.append(str(header["benchmark"]))
    if isinstance(header.get("offset"), int) and isinstance(header.get("limit"), int):
        parts.append(f"problems {header['offset']}-{header['offset'] + header['limit'] - 1}")
    if header.get("max_tokens"):
        parts.append(f"max tokens {header['max_tokens']}")
    if header.get("fusion_rule"):
        parts.append(f"rule {header['fusion_rule']}")
    return f"run: {report.run.path}" + (f" ({', '.join(parts)})" if parts else "")


def _difference_lines(comparison: Comparison) -> list[str]:
    mode, against = comparison.mode, comparison.against
    count = len(comparison.differing)
    lines = [f"{mode} vs {against}: {count} problem{'' if count == 1 else 's'} differ{'s' if count == 1 else ''} in correctness"]
    for item in comparison.differing:
        answers, stops = item["answers"], item["stop_reasons"]
        lines.append(f"#{item['problem']}  {item['right']} right  (gold {item['gold']}; {mode} "
                     f"{answers[mode]} [{stops[mode]}], {against} {answers[against]} [{stops[against]}])")
        part = item["parting"]
        if "segment" not in part:
            lines.append(f"    {part['note']}")
            continue
        rule = part["decision"] + (", forced" if part.get("forced") else "")
        lines.append(f"    parts at segment {part['segment'] + 1} of {part['segments']} "
                     f"(char {part['offset']}): {rule}, won by {part['winner']}")
        lines.append(f"    {mode}: {_quote(part['text'])}")
        lines.append(f"    {against}: {_quote(part['baseline_text'])}")
        for name, text in part.get("candidates", {}).items():
            score = ""
            scores = part.get("scores") or {}
            if scores:
                score = " nll " + ", ".join(f"{scorer} {by_name[name]:.2f}"
                                            for scorer, by_name in scores.items() if name in by_name)
            margin = (part.get("lead_margins") or {}).get(name)
            if margin is not None:  # where this candidate parts from the lead's (engine/guard.py)
                score += f"; lead's top-1 - top-2 there {margin:.3f}"
            lines.append(f"      candidate {name}: {_quote(text)}{score}")
        if part.get("note"):
            lines.append(f"    {part['note']}")
    return lines


def format_diff(report: DiffReport) -> str:
    lines = [_describe_run(report), ""]
    lines.append(format_table(["mode", "accuracy", "n"],
                              [[m["mode"], f"{m['accuracy']:.1f}%", str(m["n"])] for m in report.accuracy],
                              right=(1, 2)))
    if not report.comparisons:
        lines += ["", f"no fusion mode in this run to compare with {report.against}"]
        return "\n".join(lines)
    lines += ["", f"paired against {report.against}: the problems both answered; 95% interval from "
                  f"{report.resamples} bootstrap resamples of the problems (seed {report.seed})"]
    rows = []
    for c in report.comparisons:
        counts = c.counts
        interval = "-" if c.interval is None else f"[{_points(c.interval[0])}, {_points(c.interval[1])}]"
        rows.append([c.mode, str(counts.n), str(counts.both_right), str(counts.both_wrong), str(counts.mode_only),
                     str(counts.baseline_only), f"{_points(counts.difference)} pts", interval])
    lines.append(format_table(["mode", "n", "both right", "both wrong", "fused only", "baseline only",
                               "difference", "95% interval"], rows, right=tuple(range(1, 8))))
    for comparison in report.comparisons:
        lines += ["", *_difference_lines(comparison)]
    return "\n".join(lines)
