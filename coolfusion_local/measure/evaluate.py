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
from typing import Callable, Iterable, Iterator, Protocol, Sequence

from ..engine.events import AnswerDone, AnswerReranked, Message, SegmentChosen
from ..engine.modes import MODES, SOLO_PREFIX, solo_name
from ..engine.rerank import competing
from ..engine.sampling import GREEDY, Sampling
from ..errors import CoolfusionError
from ..files import replace_file
from .gsm8k import DEFAULT_PROMPT, Problem, build_prompt, extract_answer, is_correct

ANSWERS_FILE = "answers.jsonl"
# Long enough that the offline models finish their GSM8K working: an answer cut
# at the limit is graded wrong whatever it was heading for (docs/eval-and-bench.md
# has the answer lengths this was chosen from).
DEFAULT_MAX_TOKENS = 768
RERANK_MODE = MODES["cool+r"].name  # composed from the cool and solo answers where the run has them


class Engine(Protocol):
    def generate(self, messages, *, mode=None, max_tokens=None, stop=None, sampling=None, loop_guard=None,
                 cancel=None) -> Iterator: ...

    def member(self, name: str): ...

    def forget_cached_text(self) -> None: ...

    def rerank(self, messages, answers: dict[str, tuple[str, bool]]): ...


@dataclass(frozen=True)
class EvalSettings:
    modes: tuple[str, ...]  # expanded: "solo:NAME", "cool", ...
    models: tuple[str, ...]  # the loaded source models, for cost accounting
    max_tokens: int = DEFAULT_MAX_TOKENS
    prompt: str = DEFAULT_PROMPT
    policy: str | None = None  # ScorePolicy.label: fused answers from another rule are not mixed in
    # Every answer starts from an empty KV cache, so it is the same whatever ran
    # before it (in this run, a resumed one, or alone).
    fresh_cache: bool = True
    # Greedy unless asked (`eval --temperature`): tables stay comparable. A
    # sampled run uses the chat's loop guard too, and problem i the seed `seed + i`.
    sampling: Sampling = GREEDY
    # The model fusion leads with (`lead = true`, weight, size: engine/lead.py), not
    # necessarily models[0]; Cool+R counts tokens in its vocabulary. None: models[0].
    lead: str | None = None

    @property
    def lead_name(self) -> str:
        return self.lead or self.models[0]

    @property
    def sampling_record(self) -> dict | None:
        """What answers.jsonl and results.json say about sampling: None when greedy."""
        if self.sampling.greedy:
            return None
        return {**self.sampling.as_dict(), "loop_guard": True}

    def sampling_for(self, problem: Problem) -> Sampling:
        if self.sampling.greedy:
            return self.sampling
        return replace(self.sampling, seed=((self.sampling.seed or 0) + problem.index) % 2**31)

    def rerank_parts(self) -> tuple[str, ...]:
        """The answers Cool+R reranks: the fused one and each model's own."""
        return ("cool", *(f"{SOLO_PREFIX}{name}" for name in self.models))


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
    answer_tokens: int  # in the lead's tokens (the solo model's own for solo:NAME)
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
    sampling: dict | None = None  # EvalSettings.sampling_record; None: greedy
    # Fused modes: how each segment of the answer was decided (segment_entry());
    # what `eval diff` reads to find where a fused answer parted from the lead's.
    # None for solo answers, and in runs made before it was recorded.
    segment_log: list[dict] | None = None
    # The model the engine's fusion led with (engine/lead.py), which `eval diff` pairs
    # against; None in runs made before it was recorded.
    lead: str | None = None

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

    def read(self, repair: bool = True) -> list[AnswerRecord]:
        """Every whole record; a last line cut short by a crash is dropped from the file.

        `repair=False` leaves the file as it is (a reader such as `eval diff`,
        which may look at a run still writing): a half last line is only skipped.

        Lines end at "\n" only: `splitlines()` would also split at U+2028, U+2029
        and U+0085, which `json.dumps(ensure_ascii=False)` writes raw inside a
        model's answer. Bytes are decoded line by line, so a tail cut inside a
        UTF-8 character is just a half line.
        """
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        *lines, tail = data.split(b"\n")  # `tail`: what follows the last newline (b"" normally)
        records = [self._parse(line, number) for number, line in enumerate(lines, 1) if line.strip()]
        if tail.strip():
            try:
                records.append(self._parse(tail, len(lines) + 1))
            except CoolfusionError:
                if not repair:
                    return records
                # The process died while writing its last answer: drop the half line,
                # through a new file renamed over the old, so a crash now loses nothing more.
                replace_file(self.path, data[: len(data) - len(tail)])
                return records
            # A whole last record without its newline: end it, or the next append would join it.
            if not repair:
                return records
            with self.path.open("ab") as stream:
                stream.write(b"\n")
        return records

    def _parse(self, line: bytes, number: int) -> AnswerRecord:
        try:
            return AnswerRecord.from_dict(json.loads(line.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError, TypeError, KeyError) as error:
            reason = "not UTF-8" if isinstance(error, UnicodeDecodeError) else error
            raise CoolfusionError(
                f"{self.path}:{number}: not an answer record ({reason}); fix or delete that line to resume",
                exit_code=2,
            ) from None

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
                      ("--prompt", settings.prompt, record.prompt),
                      ("sampling", _sampling_text(settings.sampling_record), _sampling_text(record.sampling))]
            if solo_name(record.mode) is None and None not in (record.policy, settings.policy):
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


def _sampling_text(record: dict | None) -> str:
    if record is None:
        return "greedy"
    return "(" + ", ".join(f"{key} {value}" for key, value in record.items()) + ")"


# --------------------------------------------------------------------------- answering


@dataclass(frozen=True)
class Answered:
    """One finished answer and what it cost."""

    done: "AnswerDone"
    seconds: float  # wall time, prompt included
    decoded_tokens: dict[str, int]  # tokens each model ran through llama_decode for it
    chosen: str | None = None  # cool+r: the answer it picked
    segment_log: list[dict] | None = None  # the fused answer's segment_entry() per segment


def segment_entry(segment: SegmentChosen) -> dict:
    """One fused segment as answers.jsonl keeps it: its text, winner and the rule that decided it.

    The candidates and their cross-scores only where the models disagreed: an
    agreed segment's candidates are its own text, and most segments agree, so
    this keeps the log to a few times the answer's size.
    """
    record = segment.as_record()
    entry: dict = {key: record[key] for key in ("text", "winner", "decision")}
    if record["forced"]:
        entry["forced"] = True
    if record["decision"] != "agreed":
        entry["candidates"] = record["candidates"]
        if record["lead_margins"]:
            entry["lead_margins"] = record["lead_margins"]
        if record["scores"]:
            entry["scores"] = {scorer: {name: round(nll, 3) for name, nll in by_name.items()}
                               for scorer, by_name in record["scores"].items()}
    return entry


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
                     cancel=None, sampling: Sampling = GREEDY) -> Answered:
    """Run one answer to its AnswerDone, measuring wall time and each model's decode work.

    Greedy answers run without the loop guard (as every earlier table did);
    sampled ones with it, as the chat app runs."""
    meter = _CostMeter(engine, models)
    events = engine.generate(messages, mode=mode, max_tokens=max_tokens, sampling=sampling,
                             loop_guard=not sampling.greedy, cancel=cancel)
    done = chosen = None
    segments: list[dict] = []
    try:
        for event in events:
            if isinstance(event, AnswerDone):
                done = event
            elif isinstance(event, AnswerReranked):
                chosen = event.chosen
            elif isinstance(event, SegmentChosen):
                segments.append(segment_entry(event))
    finally:
        events.close()  # on Ctrl-C: let the engine leave its models in a clean state
    if done is None:
        raise CoolfusionError(f"the engine ended without an answer in mode {mode}")
    seconds, decoded = meter.read()
    fused = solo_name(mode) is None
    return Answered(done=done, seconds=seconds, decoded_tokens=decoded, chosen=chosen,
                    segment_log=segments if fused else None)


def engine_lead(engine: Engine, models: Sequence[str]) -> str:
    """The model the engine's fusion leads with among `models` (fusion.lead_member's rule)."""
    from ..engine.fusion import lead_member

    return lead_member([engine.member(name) for name in models]).name


def _messages(problem: Problem, settings: EvalSettings) -> list:
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
    solos = {name: parts[f"{SOLO_PREFIX}{name}"] for name in settings.models}
    composed = list(settings.rerank_parts())
    keep_fused = replace(fused, mode=RERANK_MODE, chosen="fused", composed_from=composed)
    if fused.stop_reason in ("stopped", "error", "context_full") or len(solos) == 1:
        return keep_fused
    written = {"fused": (fused.text, fused.stop_reason)}
    written.update({name: (record.text, record.stop_reason) for name, record in solos.items()})
    answers = competing(written)  # as Cool+R itself: empty, failed and cut-short answers never win
    if not answers:
        return keep_fused
    meter = _CostMeter(engine, settings.models)
    try:
        reranked = engine.rerank(_messages(problem, settings), answers)
    except CoolfusionError:  # as Cool+R itself does: a rerank that cannot run keeps the fused answer
        return keep_fused
    seconds, decoded = meter.read()
    for record in parts.values():
        add_counts(decoded, record.decoded_tokens)
    picked = fused if reranked.chosen == "fused" else solos[reranked.chosen]
    lead = engine.member(settings.lead_name).model
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
        segment_log=picked.segment_log,  # a model's own answer has none: it was not fused
        lead=settings.lead_name,
    )


def answer_one(engine: Engine, problem: Problem, mode: str, settings: EvalSettings, cancel=None) -> AnswerRecord:
    """Ask `engine` one problem in one mode and grade the answer."""
    messages = _messages(problem, settings)
    answered = answer_with_cost(engine, messages, mode, settings.max_tokens, settings.models, cancel,
                                settings.sampling_for(problem))
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
        policy=None if solo_name(mode) is not None else settings.policy,
        chosen=answered.chosen,
        sampling=settings.sampling_record,
        segment_log=answered.segment_log,
        lead=settings.lead_name,
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
