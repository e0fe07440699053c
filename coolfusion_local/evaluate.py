"""Accuracy runs: every (problem, mode) pair answered once, logged as it finishes, summarized.

A run lives in one folder: `answers.jsonl` gets one line per finished answer,
flushed at once, so a run stopped by Ctrl-C, a crash or a reboot loses at most
the answer in progress; running again with the same folder skips the pairs
already there. `results.json` is the summary, rewritten from the whole log at
the end of every run (so it covers resumed answers too; `eval_report.py`).

The runner only needs an engine-like object (`generate`, `member`), which is
what lets the tests drive it without loading models.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Protocol, Sequence

from .errors import CoolfusionError
from .gsm8k import DEFAULT_PROMPT, Problem, build_prompt, extract_answer, is_correct

if TYPE_CHECKING:
    from .engine import AnswerDone

ANSWERS_FILE = "answers.jsonl"
RERANK_MODE = "cool+r"


class Engine(Protocol):
    def generate(self, messages, *, mode=None, max_tokens=None, stop=None, cancel=None) -> Iterator: ...

    def member(self, name: str): ...

    def forget_cached_text(self) -> None: ...

    def rerank(self, messages, answers: dict[str, tuple[str, bool]]): ...


@dataclass(frozen=True)
class EvalSettings:
    modes: tuple[str, ...]  # expanded: "solo:NAME", "cool", ...
    models: tuple[str, ...]  # the loaded source models, for cost accounting
    max_tokens: int = 256
    prompt: str = DEFAULT_PROMPT
    policy: str | None = None  # ScorePolicy.label: fused answers from another rule are not mixed in
    # Every answer starts from an empty KV cache, so it is the same whatever ran
    # before it (in this run, a resumed one, or alone).
    fresh_cache: bool = True

    def rerank_parts(self) -> tuple[str, ...]:
        """The answers Cool+R reranks: the fused one and each model's own."""
        return ("cool", *(f"solo:{name}" for name in self.models))


@dataclass(frozen=True)
class AnswerRecord:
    """One answered (problem, mode) pair: one line of answers.jsonl."""

    problem: int
    mode: str
    question: str
    gold: str
    extracted: str | None
    correct: bool
    text: str
    stop_reason: str
    seconds: float  # wall time of the whole answer, prompt included
    answer_tokens: int  # in the first source model's tokens (the solo model's own for solo:NAME)
    segments: int
    decisions: dict[str, int]
    wins: dict[str, int]
    decoded_tokens: dict[str, int]  # tokens each model ran through llama_decode for this answer
    max_tokens: int
    prompt: str
    error: str | None = None
    policy: str | None = None  # the fused modes' ScorePolicy.label
    chosen: str | None = None  # cool+r: the answer it picked ("fused" or a model name)
    # cool+r made from this run's own cool and solo answers instead of writing them again
    composed_from: list[str] | None = None

    @property
    def key(self) -> tuple[int, str]:
        return (self.problem, self.mode)

    @classmethod
    def from_dict(cls, data: dict) -> "AnswerRecord":
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})


def add_counts(total: dict, part: dict) -> None:
    """Add `part`'s counts into `total`, key by key."""
    for key, value in part.items():
        total[key] = total.get(key, 0) + value


# --------------------------------------------------------------------------- the log


class AnswerLog:
    """answers.jsonl: read back for resuming, appended one flushed line per answer."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.path = self.folder / ANSWERS_FILE

    def read(self) -> list[AnswerRecord]:
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
        records: list[AnswerRecord] = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                records.append(AnswerRecord.from_dict(json.loads(line)))
            except (json.JSONDecodeError, TypeError, KeyError) as error:
                if number == len(lines) and not line.endswith("\n"):
                    # The process died while writing its last answer: drop the half line.
                    self.path.write_text("".join(lines[:-1]), encoding="utf-8")
                    return records
                raise CoolfusionError(
                    f"{self.path}:{number}: not an answer record ({error}); fix or delete that line to resume",
                    exit_code=2,
                ) from None
        if lines and not lines[-1].endswith("\n"):
            # A whole last record without its newline: end it, or the next append would join it.
            with self.path.open("a", encoding="utf-8") as stream:
                stream.write("\n")
        return records

    def append(self, record: AnswerRecord) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as stream:
            stream.write(json.dumps(asdict(record), ensure_ascii=False) + "\n")
            stream.flush()
            os.fsync(stream.fileno())


def plan_jobs(
    problems: Sequence[Problem], settings: EvalSettings, done: Iterable[AnswerRecord]
) -> list[tuple[Problem, str]]:
    """The (problem, mode) pairs still to answer, problem by problem.

    Problem-major order keeps the modes comparable at any point a run stops.
    Answers logged for the same problem index with another question, prompt or
    token budget mean the folder belongs to a different run: that is an error,
    not something to mix into the summary.
    """
    by_index = {p.index: p for p in problems}
    finished: set[tuple[int, str]] = set()
    for record in done:
        problem = by_index.get(record.problem)
        if problem is not None and record.question != problem.question:
            raise CoolfusionError(
                f"this --out folder holds answers to a different problem #{record.problem} "
                "(another data file?); pick a new --out folder", exit_code=2)
        if record.mode in settings.modes and problem is not None:
            checks = [("--max-tokens", settings.max_tokens, record.max_tokens),
                      ("--prompt", settings.prompt, record.prompt)]
            if not record.mode.startswith("solo:") and None not in (record.policy, settings.policy):
                checks.append(("the fusion rule", settings.policy, record.policy))
            for name, ours, theirs in checks:
                if ours != theirs:
                    raise CoolfusionError(
                        f"this --out folder was run with {name} {theirs}, not {ours}; "
                        f"resume with {name} {theirs} or pick a new --out folder", exit_code=2)
        finished.add(record.key)
    # Cool+R goes last within a problem, so it can use that problem's cool and solo answers.
    modes = sorted(settings.modes, key=lambda mode: mode == RERANK_MODE)
    return [(p, mode) for p in problems for mode in modes if (p.index, mode) not in finished]


# --------------------------------------------------------------------------- answering


@dataclass(frozen=True)
class Answered:
    """One finished answer and what it cost."""

    done: "AnswerDone"
    seconds: float  # wall time, prompt included
    decoded_tokens: dict[str, int]  # tokens each model ran through llama_decode for it
    chosen: str | None = None  # cool+r: the answer it picked


class _CostMeter:
    """Wall time and each model's llama_decode work from its creation to `read()`."""

    def __init__(self, engine: Engine, models: Sequence[str]):
        self._engine, self._models = engine, models
        self._before = self._decoded()
        self._started = time.perf_counter()

    def _decoded(self) -> dict[str, int]:
        return {name: self._engine.member(name).model.decoded_tokens for name in self._models}

    def read(self) -> tuple[float, dict[str, int]]:
        seconds, now = time.perf_counter() - self._started, self._decoded()
        return seconds, {name: now[name] - self._before[name] for name in self._models}


def answer_with_cost(engine: Engine, messages, mode: str, max_tokens: int, models: Sequence[str],
                     cancel=None) -> Answered:
    """Run one answer to its AnswerDone, measuring wall time and each model's decode work."""
    from .engine import AnswerDone, AnswerReranked

    meter = _CostMeter(engine, models)
    events = engine.generate(messages, mode=mode, max_tokens=max_tokens, cancel=cancel)
    done = chosen = None
    try:
        for event in events:
            if isinstance(event, AnswerDone):
                done = event
            elif isinstance(event, AnswerReranked):
                chosen = event.chosen
    finally:
        events.close()  # on Ctrl-C: let the engine leave its models in a clean state
    if done is None:
        raise CoolfusionError(f"the engine ended without an answer in mode {mode}")
    seconds, decoded = meter.read()
    return Answered(done=done, seconds=seconds, decoded_tokens=decoded, chosen=chosen)


def _messages(problem: Problem, settings: EvalSettings) -> list:
    from .engine import Message

    return [Message("user", build_prompt(problem.question, settings.prompt))]


def rerank_from_parts(engine: Engine, problem: Problem, settings: EvalSettings,
                      parts: dict[str, AnswerRecord]) -> AnswerRecord:
    """Cool+R from answers this run already has: only the whole-answer scoring runs.

    Cool+R writes the fused answer and every model's own, then scores them;
    when the run also evaluates cool and each model alone, those are the same
    greedy answers, so writing them a second time would double the run's cost
    for nothing. Time and decode work are the parts' plus the scoring's, i.e.
    what Cool+R alone would have spent.
    """
    fused = parts["cool"]
    solos = {name: parts[f"solo:{name}"] for name in settings.models}
    composed = list(settings.rerank_parts())
    keep_fused = replace(fused, mode=RERANK_MODE, chosen="fused", composed_from=composed)
    if fused.stop_reason in ("stopped", "error", "context_full") or len(solos) == 1:
        return keep_fused
    answers = {"fused": (fused.text, fused.stop_reason == "eos")}
    answers.update({name: (record.text, record.stop_reason == "eos") for name, record in solos.items()})
    meter = _CostMeter(engine, settings.models)
    try:
        reranked = engine.rerank(_messages(problem, settings), answers)
    except CoolfusionError:  # as Cool+R itself does: a rerank that cannot run keeps the fused answer
        return keep_fused
    seconds, decoded = meter.read()
    for record in parts.values():
        add_counts(decoded, record.decoded_tokens)
    picked = fused if reranked.chosen == "fused" else solos[reranked.chosen]
    lead = engine.member(settings.models[0]).model
    return replace(
        fused,
        mode=RERANK_MODE,
        extracted=picked.extracted,
        correct=picked.correct,
        text=picked.text,
        stop_reason=picked.stop_reason,
        seconds=round(sum(record.seconds for record in parts.values()) + seconds, 3),
        answer_tokens=len(lead.tokenize(picked.text.encode("utf-8"))),
        decoded_tokens=decoded,
        chosen=reranked.chosen,
        composed_from=composed,
    )


def answer_one(engine: Engine, problem: Problem, mode: str, settings: EvalSettings, cancel=None) -> AnswerRecord:
    """Ask `engine` one problem in one mode and grade the answer."""
    messages = _messages(problem, settings)
    answered = answer_with_cost(engine, messages, mode, settings.max_tokens, settings.models, cancel)
    done, stats = answered.done, answered.done.stats
    extracted = extract_answer(done.text)
    return AnswerRecord(
        problem=problem.index,
        mode=mode,
        question=problem.question,
        gold=problem.gold,
        extracted=extracted,
        correct=is_correct(extracted, problem.gold),
        text=done.text,
        stop_reason=done.stop_reason,
        seconds=round(answered.seconds, 3),
        answer_tokens=stats.answer_tokens,
        segments=stats.segments,
        decisions=dict(stats.decisions),
        wins=dict(stats.wins),
        decoded_tokens=answered.decoded_tokens,
        max_tokens=settings.max_tokens,
        prompt=settings.prompt,
        error=done.error,
        policy=None if mode.startswith("solo:") else settings.policy,
        chosen=answered.chosen,
    )


def run_jobs(
    engine: Engine,
    jobs: Sequence[tuple[Problem, str]],
    settings: EvalSettings,
    log: AnswerLog,
    on_answer: Callable[[int, AnswerRecord], None] = lambda done, record: None,
    cancel=None,
    earlier: Iterable[AnswerRecord] = (),
) -> list[AnswerRecord]:
    """Answer `jobs` in order, logging each answer before starting the next.

    `earlier`: answers already in the log, which Cool+R may be composed from.
    """
    known = {record.key: record for record in earlier}
    records = []
    for count, (problem, mode) in enumerate(jobs, 1):
        parts = {part: known.get((problem.index, part)) for part in settings.rerank_parts()}
        if settings.fresh_cache:
            engine.forget_cached_text()
        if mode == RERANK_MODE and all(record is not None and record.error is None for record in parts.values()):
            record = rerank_from_parts(engine, problem, settings, parts)
        else:
            record = answer_one(engine, problem, mode, settings, cancel)
        if record.stop_reason == "stopped":
            break  # cancelled half way: not an answer, leave it to the resumed run
        log.append(record)
        records.append(record)
        known[record.key] = record
        on_answer(count, record)
    return records
