"""Speed and memory: each model alone and each fusion mode, on the same prompts, in one process.

Every figure comes from the engine's own `GenerationStats` (the same numbers
`generate` prints), so bench measures what users get, not a separate code
path. Time per token leaves out prompt evaluation: it is the cost of writing
the answer. The headline is the fusion overhead ratio

    fused seconds per token / sum over models of solo seconds per token

which is 1.0 when fusing costs exactly "run every model once", the floor for
any method where each model reads every answer token. Above 1 is overhead
(cross-scoring, re-tokenising, Python bookkeeping); below 1 means segments
were committed without every model decoding them.

Beside it, the ratio to the lead model alone (fused ms/token / the lead's
solo ms/token): what a user who could ask the lead alone pays for fusing.
Below 1 means fusing (with drafting: the cheaper model writing ahead, the
lead checking in batches) answers faster than the lead alone.

Counting caveat: fused answers are counted in the lead model's tokens, solo
answers in each model's own.
"""

from __future__ import annotations

import resource
import statistics
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

from ..engine.events import Message
from ..errors import CoolfusionError
from ..models.gguf_info import GgufError, kv_cache_bytes as cache_size, read_gguf_metadata
from .eval_report import SHARED_DECISIONS
from .evaluate import add_counts, answer_with_cost
from .text_table import format_table


@dataclass(frozen=True)
class BenchPrompt:
    name: str
    text: str


# One of each kind of answer a user asks for: arithmetic reasoning, prose, code.
PROMPTS = (
    BenchPrompt("math", "A baker makes 24 muffins in the morning and twice as many in the afternoon. "
                        "He sells 50 of them. How many muffins are left? Solve it step by step."),
    BenchPrompt("explain", "Explain in a few sentences why the sky is blue."),
    BenchPrompt("code", "Write a Python function that checks whether a string is a palindrome, "
                        "ignoring case and spaces."),
)
MEMORY_MARGIN = 1.15


@dataclass(frozen=True)
class RunMeasure:
    """One answer: what `GenerationStats` reported, plus llama_decode work per model."""

    mode: str
    prompt: str
    stop_reason: str
    answer_tokens: int
    seconds: float
    prompt_seconds: float
    segments: int
    # The engine's time split ("propose_seconds", "score_seconds", ...) as its
    # stats report it, taken generically so a new phase needs no change here.
    timings: dict[str, float]
    decisions: dict[str, int]
    decoded_tokens: dict[str, int]
    repeat: int = 0  # which pass over all modes and prompts (--repeat)
    # Per served (remote) model: requests made and seconds spent waiting on them.
    remote: dict[str, tuple[int, float]] = field(default_factory=dict)
    lead: str = ""  # the model whose tokens the answer is counted in
    draft_offered: int = 0  # guess tokens drafted for the checking models (engine/drafting.py)
    draft_accepted: int = 0
    lead_decodes: int = 0  # llama_decode calls of the lead (a batch counts once)

    @property
    def generate_seconds(self) -> float:
        return max(self.seconds - self.prompt_seconds, 1e-9)


_NOT_PHASES = ("seconds", "prompt_seconds", "bookkeeping_seconds")  # totals, not parts of the split
# Table columns: engine phases folded into the five the table shows.
SPLIT_COLUMNS = ("propose", "score", "commit", "boundary", "draft", "other")
_COLUMNS = {"propose_seconds": "propose", "catch_up_seconds": "propose", "score_seconds": "score",
            "commit_seconds": "commit", "boundary_seconds": "boundary", "draft_seconds": "draft",
            "check_seconds": "draft"}


@dataclass(frozen=True)
class ModeBench:
    """The runs of one mode over all prompts, added up."""

    mode: str
    runs: tuple[RunMeasure, ...]

    def _total(self, name: str) -> float:
        return sum(getattr(run, name) for run in self.runs)

    @property
    def fused(self) -> bool:
        return not self.mode.startswith("solo:")

    def seconds_per_token_by_repeat(self) -> list[float]:
        """Generation seconds per answer token in each pass (one value without --repeat)."""
        passes: dict[int, list[RunMeasure]] = {}
        for run in self.runs:
            passes.setdefault(run.repeat, []).append(run)
        return [sum(r.generate_seconds for r in runs) / max(sum(r.answer_tokens for r in runs), 1)
                for _, runs in sorted(passes.items())]

    @property
    def answer_tokens(self) -> int:
        return int(self._total("answer_tokens"))

    @property
    def lead(self) -> str:
        """The model the answers are counted in (the mode's own model when solo)."""
        return self.mode[5:] if not self.fused else next((r.lead for r in self.runs if r.lead), "")

    @property
    def draft_acceptance(self) -> float | None:
        """Share of drafted guess tokens the checking models accepted; None when nothing was drafted."""
        offered = self._total("draft_offered")
        return self._total("draft_accepted") / offered if offered else None

    @property
    def segments_per_lead_decode(self) -> float | None:
        decodes = self._total("lead_decodes")
        return self.segments / decodes if decodes else None

    @property
    def segments(self) -> int:
        return int(self._total("segments"))

    @property
    def generate_seconds(self) -> float:
        return self._total("generate_seconds")

    @property
    def tokens_per_second(self) -> float:
        return self.answer_tokens / self.generate_seconds if self.generate_seconds else 0.0

    @property
    def seconds_per_token(self) -> float:
        return self.generate_seconds / max(self.answer_tokens, 1)

    def phase_seconds(self) -> dict[str, float]:
        """Seconds per engine phase, plus "bookkeeping": generation time no phase accounts for."""
        totals: dict[str, float] = {}
        for run in self.runs:
            for name, seconds in run.timings.items():
                totals[name] = totals.get(name, 0.0) + seconds
        totals["bookkeeping_seconds"] = max(self.generate_seconds - sum(totals.values()), 0.0)
        return totals

    def segment_split_ms(self) -> dict[str, float]:
        """Milliseconds per segment: propose (with adaptive catch-up decoding), score, commit,
        boundary (tokenizer calls), other (bookkeeping; in cool+r also the solo answers and rerank)."""
        split = dict.fromkeys(SPLIT_COLUMNS, 0.0)
        for name, seconds in self.phase_seconds().items():
            split[_COLUMNS.get(name, "other")] += 1000.0 * seconds / max(self.segments, 1)
        return split

    def remote_per_segment(self) -> dict[str, tuple[float, float, float]]:
        """Per served model: (requests per segment, ms in HTTP per segment, share of generation time)."""
        found: dict[str, list[float]] = {}
        for run in self.runs:
            for name, (requests, seconds) in run.remote.items():
                totals = found.setdefault(name, [0, 0.0])
                totals[0] += requests
                totals[1] += seconds
        segments = max(self.segments, 1)
        return {name: (requests / segments, 1000 * seconds / segments, seconds / max(self._total("seconds"), 1e-9))
                for name, (requests, seconds) in found.items()}

    def decision_shares(self) -> dict[str, float]:
        counts: dict[str, int] = {}
        for run in self.runs:
            add_counts(counts, run.decisions)
        segments = max(self.segments, 1)
        return {d: 100.0 * counts.get(d, 0) / segments for d in (*SHARED_DECISIONS, "forced")}

    def as_dict(self) -> dict:
        return {
            "mode": self.mode,
            "answer_tokens": self.answer_tokens,
            "segments": self.segments,
            "generate_seconds": round(self.generate_seconds, 4),
            "tokens_per_second": round(self.tokens_per_second, 2),
            "ms_per_token": round(1000 * self.seconds_per_token, 2),
            "ms_per_token_by_repeat": [round(1000 * s, 2) for s in self.seconds_per_token_by_repeat()],
            "ms_per_segment": {k: round(v, 2) for k, v in self.segment_split_ms().items()},
            "phase_seconds": {k: round(v, 4) for k, v in self.phase_seconds().items()},
            "decision_shares": {k: round(v, 1) for k, v in self.decision_shares().items()} if self.fused else {},
            "draft_acceptance": None if self.draft_acceptance is None else round(self.draft_acceptance, 3),
            "segments_per_lead_decode": (None if self.segments_per_lead_decode is None
                                         else round(self.segments_per_lead_decode, 3)),
            "remote_per_segment": {name: {"requests": round(r, 2), "http_ms": round(ms, 1), "http_share": round(sh, 3)}
                                   for name, (r, ms, sh) in self.remote_per_segment().items()},
            "runs": [asdict(run) for run in self.runs],
        }


@dataclass(frozen=True)
class MemoryCheck:
    """Peak RSS against the budget: model files + KV caches, plus 15% for buffers and Python."""

    peak_rss: int | None  # bytes; None where the OS cannot say (Windows)
    model_files: dict[str, int]
    kv_caches: dict[str, int | None]  # None: the GGUF lacks the head sizes to compute it

    @property
    def target(self) -> int:
        return int(MEMORY_MARGIN * (sum(self.model_files.values()) + sum(v or 0 for v in self.kv_caches.values())))

    @property
    def within(self) -> bool | None:
        return None if self.peak_rss is None else self.peak_rss <= self.target

    def as_dict(self) -> dict:
        return {**asdict(self), "target": self.target, "within_target": self.within}


@dataclass(frozen=True)
class BenchReport:
    models: tuple[str, ...]
    prompts: tuple[str, ...]
    max_tokens: int
    solo: tuple[ModeBench, ...]
    fused: tuple[ModeBench, ...]
    memory: MemoryCheck
    cpu_extra_buffers: str | None = None  # "on (why)" / "off (why)": llama.cpp's AMX and repacking buffers
    draft: str | None = None  # [fusion] draft the fusion modes ran with

    @property
    def solo_seconds_per_token_sum(self) -> float:
        return sum(bench.seconds_per_token for bench in self.solo)

    def overhead_ratio(self, bench: ModeBench) -> float:
        return bench.seconds_per_token / self.solo_seconds_per_token_sum

    def _solo_of(self, name: str) -> ModeBench | None:
        return next((b for b in self.solo if b.mode == f"solo:{name}"), None)

    def lead_ratio(self, bench: ModeBench) -> float | None:
        """Fused ms/token over the lead model's own ms/token alone; None when the lead was not timed alone."""
        lead = self._solo_of(bench.lead)
        return bench.seconds_per_token / lead.seconds_per_token if lead else None

    def lead_ratio_by_repeat(self, bench: ModeBench) -> list[float]:
        lead = self._solo_of(bench.lead)
        if lead is None:
            return []
        return [fused / alone for fused, alone in zip(bench.seconds_per_token_by_repeat(),
                                                      lead.seconds_per_token_by_repeat())]

    def overhead_ratio_by_repeat(self, bench: ModeBench) -> list[float]:
        """The ratio within each pass: fused and solo timed minutes apart, not a whole run apart."""
        solo_sums = [sum(values) for values in zip(*(b.seconds_per_token_by_repeat() for b in self.solo))]
        return [fused / solo for fused, solo in zip(bench.seconds_per_token_by_repeat(), solo_sums)]

    def as_dict(self) -> dict:
        return {
            "models": list(self.models),
            "prompts": list(self.prompts),
            "max_tokens": self.max_tokens,
            "solo": [b.as_dict() for b in self.solo],
            "fused": [{**b.as_dict(), "overhead_ratio": round(self.overhead_ratio(b), 3),
                       "overhead_ratio_by_repeat": [round(r, 3) for r in self.overhead_ratio_by_repeat(b)],
                       "lead": b.lead,
                       "lead_ratio": None if self.lead_ratio(b) is None else round(self.lead_ratio(b), 3),
                       "lead_ratio_by_repeat": [round(r, 3) for r in self.lead_ratio_by_repeat(b)]}
                      for b in self.fused],
            "solo_ms_per_token_sum": round(1000 * self.solo_seconds_per_token_sum, 2),
            "memory": self.memory.as_dict(),
            "cpu_extra_buffers": self.cpu_extra_buffers,
            "draft": self.draft,
        }


# --------------------------------------------------------------------------- measuring


def _answer(engine, mode: str, prompt: BenchPrompt, max_tokens: int, models: Sequence[str]) -> RunMeasure:
    clients = {name: engine.member(name).model.client for name in models
               if not engine.member(name).model.is_local}
    before = {name: (client.requests, client.seconds) for name, client in clients.items()}
    answered = answer_with_cost(engine, [Message("user", prompt.text)], mode, max_tokens, models)
    remote = {name: (client.requests - before[name][0], client.seconds - before[name][1])
              for name, client in clients.items()}
    done = answered.done
    if done.stop_reason == "error":
        raise CoolfusionError(f"bench: mode {mode} failed on the {prompt.name} prompt: {done.error}")
    stats = done.stats
    return RunMeasure(
        mode=mode,
        prompt=prompt.name,
        stop_reason=done.stop_reason,
        answer_tokens=stats.answer_tokens,
        seconds=stats.seconds,
        prompt_seconds=stats.prompt_seconds,
        segments=stats.segments,
        timings={k: v for k, v in stats.as_dict().items() if k.endswith("_seconds") and k not in _NOT_PHASES},
        decisions=dict(stats.decisions),
        decoded_tokens=answered.decoded_tokens,
        remote=remote,
        lead=stats.lead,
        draft_offered=stats.draft_offered,
        draft_accepted=stats.draft_accepted,
        lead_decodes=stats.lead_decodes,
    )


def run_bench(
    engine,
    models: Sequence[str],
    modes: Sequence[str],
    prompts: Sequence[BenchPrompt],
    max_tokens: int,
    say: Callable[[str], None] = lambda message: None,
    repeats: int = 1,
) -> BenchReport:
    """Measure every model alone, then every fusion mode, on the same prompts.

    With `repeats` > 1 the whole sequence runs again that many times (not
    each answer back to back), so a slow stretch of the machine shows up as
    spread between passes instead of skewing one mode.
    """
    # Warm-up, not measured: first calls fill llama.cpp's buffers and our token-piece caches.
    for name in models:
        _answer(engine, f"solo:{name}", prompts[0], 4, models)
    results: dict[str, list[RunMeasure]] = {}
    for repeat in range(repeats):
        for mode in [*(f"solo:{name}" for name in models), *modes]:
            for prompt in prompts:
                run = replace(_answer(engine, mode, prompt, max_tokens, models), repeat=repeat)
                results.setdefault(mode, []).append(run)
                say(f"{mode:>22} {prompt.name:<8} {run.answer_tokens:4d} tokens  "
                    f"{run.answer_tokens / run.generate_seconds:6.1f} tok/s"
                    + (f"  (pass {repeat + 1}/{repeats})" if repeats > 1 else ""))
    benches = {mode: ModeBench(mode, tuple(runs)) for mode, runs in results.items()}
    return BenchReport(
        models=tuple(models),
        prompts=tuple(p.name for p in prompts),
        max_tokens=max_tokens,
        solo=tuple(benches[f"solo:{name}"] for name in models),
        fused=tuple(benches[mode] for mode in modes),
        memory=memory_check(engine, models),
        cpu_extra_buffers=engine.cpu_extra_buffers.describe() if engine.cpu_extra_buffers else None,
        draft=engine.config.fusion.draft,
    )


# --------------------------------------------------------------------------- memory


def peak_rss_bytes() -> int | None:
    """This process's peak resident set size, in bytes."""
    try:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (AttributeError, OSError):
        return None
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


def kv_cache_bytes(path: Path, n_ctx: int) -> int | None:
    """The model's whole f16 KV cache at `n_ctx` (see gguf_info.kv_cache_bytes); None when unknown."""
    try:
        return cache_size(read_gguf_metadata(path, array_head=0), n_ctx)
    except GgufError:
        return None


def memory_check(engine, models: Sequence[str]) -> MemoryCheck:
    files, caches = {}, {}
    for name in models:
        model = engine.member(name).model
        if not model.is_local:  # its weights and cache live on the server
            files[name], caches[name] = 0, 0
            continue
        files[name] = model.path.stat().st_size
        caches[name] = kv_cache_bytes(model.path, model.n_ctx)
    return MemoryCheck(peak_rss=peak_rss_bytes(), model_files=files, kv_caches=caches)


# --------------------------------------------------------------------------- printing


def _mb(size: int | None) -> str:
    return "?" if size is None else f"{size / 1e6:.0f} MB"


def _with_spread(value: float, passes: Sequence[float], spec: str) -> str:
    """`value`, and with several passes "±" their standard deviation."""
    if len(passes) < 2:
        return format(value, spec)
    return f"{value:{spec}}±{statistics.stdev(passes):{spec}}"


def format_bench_table(report: BenchReport) -> str:
    headers = ["mode", "tok/s", "ms/tok", "ratio", "vs lead", *SPLIT_COLUMNS, *SHARED_DECISIONS, "drafted",
               "seg/lead-dec"]
    rows = []
    for bench in (*report.solo, *report.fused):
        split = bench.segment_split_ms()
        ms_per_token = _with_spread(1000 * bench.seconds_per_token,
                                    [1000 * s for s in bench.seconds_per_token_by_repeat()], ".1f")
        ratio = (_with_spread(report.overhead_ratio(bench), report.overhead_ratio_by_repeat(bench), ".2f")
                 if bench.fused else "-")
        lead_ratio = report.lead_ratio(bench)
        vs_lead = (_with_spread(lead_ratio, report.lead_ratio_by_repeat(bench), ".2f")
                   if bench.fused and lead_ratio is not None else "-")
        shares = bench.decision_shares()
        acceptance, per_decode = bench.draft_acceptance, bench.segments_per_lead_decode
        rows.append([
            bench.mode, f"{bench.tokens_per_second:.1f}", ms_per_token, ratio, vs_lead,
            *(f"{split[column]:.1f}" for column in SPLIT_COLUMNS),
            *([f"{shares[d]:.0f}%" for d in SHARED_DECISIONS] if bench.fused else ["-"] * len(SHARED_DECISIONS)),
            "-" if acceptance is None else f"{100 * acceptance:.0f}%",
            "-" if per_decode is None else f"{per_decode:.2f}",
        ])
    table = format_table(headers, rows, right=tuple(range(1, len(headers))))
    legend = ("ratio: fused ms/tok / sum of the solo ms/tok.  vs lead: fused ms/tok / the lead model's solo "
              "ms/tok.  ms per segment: propose (greedy decoding, with adaptive catch-up), score (cross-scoring), "
              "commit (appending the winner to every model), boundary (tokenizer calls), draft (the cheapest "
              "model drafting ahead and the others checking it in batches), other (bookkeeping; cool+r: also its "
              "solo answers and rerank).  sure / number: the lead kept its own, sure of its tokens or inside a number (the guard).  vetoed: settled by the lead's veto before any scoring.  drafted: share "
              "of drafted tokens the checking models accepted.  seg/lead-dec: segments per llama_decode call "
              "of the lead")
    remote = [f"{bench.mode}: {name} {requests:.1f} requests/segment, {ms:.0f} ms/segment in HTTP "
              f"({100 * share:.0f}% of the time)"
              for bench in (*report.solo, *report.fused)
              for name, (requests, ms, share) in bench.remote_per_segment().items()]
    if remote:
        legend += "\nserved models (HTTP: request to answer, the server's compute included):\n  " + "\n  ".join(remote)
    lines = [table, legend, "", format_memory_line(report.memory)]
    if report.draft:
        lines.append(f"drafting: {report.draft}")
    if report.cpu_extra_buffers:
        lines.append(f"llama.cpp extra CPU buffer types (AMX, repacking): {report.cpu_extra_buffers}")
    return "\n".join(lines)


def format_memory_line(memory: MemoryCheck) -> str:
    files = " + ".join(f"{name} {_mb(size)}" for name, size in memory.model_files.items())
    caches = " + ".join(_mb(size) for size in memory.kv_caches.values())
    verdict = {True: "within target", False: "OVER target", None: "peak RSS unknown"}[memory.within]
    return (f"memory: peak RSS {_mb(memory.peak_rss)} vs target {_mb(memory.target)} "
            f"(files {files}; KV caches {caches}; +15%): {verdict}")
