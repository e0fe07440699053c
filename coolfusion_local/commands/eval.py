"""`coolfusion eval gsm8k`: accuracy of each model alone and of each fusion mode, side by side.

Every selected mode answers the same problems (`--offset` .. `--offset + --limit`).
Answers are logged to `--out`/answers.jsonl as they finish; running the same
command with the same `--out` again carries on where it stopped. The summary
table goes to stdout, progress and loading messages to stderr.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TextIO

from ..engine.modes import FUSION_MODES
from ..engine.sampling import GREEDY
from ..engine.scoring import ScorePolicy
from ..errors import CoolfusionError
from ..fusion_engine import FusionEngine, load_config
from ..measure.eval_report import code_version, cut_warning, format_summary_table, summarize, write_results
from ..measure.evaluate import (
    DEFAULT_MAX_TOKENS, AnswerLog, AnswerRecord, EvalSettings, engine_lead, plan_jobs, run_jobs,
)
from ..measure.gsm8k import DEFAULT_PROMPT, PROMPTS, load_problems
from ..measure.headroom import format_headroom
from . import eval_diff, eval_headroom
from .common import add_config_argument, configure_logging
from .run_options import add_models_argument, load_models, parse_modes, select_models
from .sampling_options import add_sampling_arguments, sampling_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("eval", help="measure accuracy on a benchmark (gsm8k)",
                                   description="Measure the accuracy of each model alone and of the fusion modes.")
    benchmarks = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK | diff")
    gsm8k = benchmarks.add_parser("gsm8k", help="grade-school math word problems (GSM8K JSONL)",
                                  description="Answer GSM8K problems in every mode and grade the final numbers.")
    gsm8k.add_argument("--data", required=True, type=Path, metavar="FILE.jsonl",
                       help="GSM8K JSONL: one {question, answer ending in '#### N'} per line")
    gsm8k.add_argument("--limit", type=int, default=None, metavar="N", help="answer N problems (default: all)")
    gsm8k.add_argument("--offset", type=int, default=0, metavar="K", help="skip the first K problems (default 0)")
    gsm8k.add_argument("--modes", default="solo,cool", metavar="LIST",
                       help=f"comma-separated: solo (each model alone), solo:NAME, {', '.join(FUSION_MODES)} "
                            "(default: solo,cool)")
    add_config_argument(gsm8k)
    add_models_argument(gsm8k)
    gsm8k.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS, metavar="N",
                       help=f"answer length limit (default {DEFAULT_MAX_TOKENS}); the table's 'cut' column "
                            "is the share of answers that reached it")
    gsm8k.add_argument("--prompt", choices=sorted(PROMPTS), default=DEFAULT_PROMPT,
                       help=f"prompt wording (default {DEFAULT_PROMPT}; see docs/eval-and-bench.md)")
    gsm8k.add_argument("--reuse-cache", action="store_true",
                       help="let an answer reuse the prompt prefix the previous one left in the KV cache "
                            "(slightly faster; answers then depend on the order they ran in)")
    add_sampling_arguments(gsm8k, "greedy; a --temperature above 0 samples with models.toml's other [fusion] "
                                  "sampling values, the loop guard on, and seed (default 0) + problem index",
                           only=("temperature", "seed"))
    gsm8k.add_argument("--out", type=Path, metavar="DIR",
                       help="run folder; an existing one is resumed (default: ./eval-runs/<timestamp>)")
    gsm8k.set_defaults(func=run_gsm8k)
    eval_diff.register(benchmarks)

    def no_benchmark(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=no_benchmark)


class Progress:
    """A redrawn bar on a terminal; one line per answer in a log or pipe."""

    def __init__(self, total: int, stream: TextIO):
        self.total = total
        self.stream = stream
        self.interactive = stream.isatty()
        self.started = time.monotonic()
        self.correct: dict[str, list[int]] = {}

    def update(self, done: int, record: AnswerRecord) -> None:
        tally = self.correct.setdefault(record.mode, [0, 0])
        tally[0] += record.correct
        tally[1] += 1
        elapsed = time.monotonic() - self.started
        left = elapsed / done * (self.total - done)
        verdict = "right" if record.correct else f"wrong ({_short(record.extracted)} vs {record.gold})"
        if self.interactive:
            filled = round(24 * done / self.total)
            bar = "#" * filled + "." * (24 - filled)
            text = f"[{bar}] {done}/{self.total}  {record.mode} #{record.problem} {verdict}  ~{_clock(left)} left"
            self.stream.write("\r\033[K" + text[:150])
            if done == self.total:
                self.stream.write("\n")
        else:
            self.stream.write(f"[{done}/{self.total}] {record.mode} #{record.problem}: {verdict}, "
                              f"{record.seconds:.1f}s, ~{_clock(left)} left\n")
        self.stream.flush()

    def end_line(self) -> None:
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()


def _short(number: str | None, width: int = 16) -> str | None:
    """A wrong answer as the progress line shows it: a runaway 200-digit number cut short."""
    return number if number is None or len(number) <= width else number[: width - 1] + "…"


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def _resume_command(args: argparse.Namespace, out: Path) -> str:
    """The command that carries this run on: the same options, the same --out."""
    words = ["coolfusion", "eval", "gsm8k", "--data", str(args.data)]
    if args.limit is not None:
        words += ["--limit", str(args.limit)]
    if args.offset:
        words += ["--offset", str(args.offset)]
    words += ["--modes", args.modes, "--max-tokens", str(args.max_tokens), "--prompt", args.prompt]
    if args.reuse_cache:
        words.append("--reuse-cache")
    for option, value in (("--temperature", args.temperature), ("--seed", args.seed)):
        if value is not None:
            words += [option, str(value)]
    for option, value in (("--config", args.config), ("--models", args.models)):
        if value is not None:
            words += [option, str(value)]
    return shlex.join([*words, "--out", str(out)])


def _eval_sampling(args: argparse.Namespace, configured):
    """Greedy unless --temperature is above 0; then the config's other values, seed 0 unless given."""
    if not args.temperature:
        if args.seed is not None:
            raise CoolfusionError("--seed only matters with a --temperature above 0", exit_code=2)
        return sampling_from_args(args, GREEDY)
    return sampling_from_args(args, replace(configured, seed=0))


def _recorded_lead(records: list[AnswerRecord]) -> str | None:
    """The lead the answers name, when this run loaded no model (all answers were there)."""
    return next((record.lead for record in records if record.lead), None)


def run_gsm8k(args: argparse.Namespace) -> int:
    configure_logging()
    for name, value, minimum in (("--limit", args.limit, 1), ("--offset", args.offset, 0),
                                 ("--max-tokens", args.max_tokens, 1)):
        if value is not None and value < minimum:
            raise CoolfusionError(f"{name} must be at least {minimum}", exit_code=2)
    config = select_models(load_config(Path(args.config) if args.config else None), args.models)
    names = [spec.name for spec in config.enabled_models]
    modes = parse_modes(args.modes, names)
    problems = load_problems(args.data, args.offset, args.limit)
    out = args.out or Path("eval-runs") / datetime.now().strftime("%Y%m%d-%H%M%S")
    if out.exists() and not out.is_dir():
        raise CoolfusionError(f"--out {out} is a file; pass a folder", exit_code=2)
    policy = ScorePolicy.from_config(config.fusion)
    sampling = _eval_sampling(args, config.fusion.sampling)
    settings = EvalSettings(modes=tuple(modes), models=tuple(names), max_tokens=args.max_tokens,
                            prompt=args.prompt, policy=policy.label, fresh_cache=not args.reuse_cache,
                            sampling=sampling)
    log = AnswerLog(out)
    earlier = log.read()
    jobs = plan_jobs(problems, settings, earlier)

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    total = len(problems) * len(modes)
    if len(jobs) < total:
        say(f"resuming {out}: {total - len(jobs)} of {total} answers already there")
    else:
        say(f"writing answers to {out}/")
    if jobs:
        with FusionEngine(config) as engine:
            load_models(engine, names, say)
            settings = replace(settings, lead=engine_lead(engine, names))
            say(f"{len(problems)} problems x {len(modes)} modes ({', '.join(modes)}), max {args.max_tokens} tokens")
            progress = Progress(len(jobs), sys.stderr)
            try:
                run_jobs(engine, jobs, settings, log, progress.update, earlier=earlier)
            except KeyboardInterrupt:
                progress.end_line()
                saved = len(log.read())
                say(f"stopped: {saved} answers are saved in {out}/answers.jsonl")
                say(f"resume with: {_resume_command(args, out)}")
                return 130

    summaries = summarize(log.read(), modes, problems)
    header = {
        "benchmark": "gsm8k",
        "data": str(Path(args.data).resolve()),
        "offset": args.offset,
        "limit": len(problems),
        "max_tokens": args.max_tokens,
        "prompt": args.prompt,
        "models": names,
        "lead": settings.lead or _recorded_lead(log.read()),
        "fusion_rule": policy.label,
        "fresh_cache": not args.reuse_cache,
        "sampling": settings.sampling_record or "greedy",
        "finished": datetime.now().isoformat(timespec="seconds"),
        **code_version(),
    }
    headroom, no_headroom = eval_headroom.for_eval(config, names, log.read(), problems)
    if headroom is not None:
        header["headroom"] = headroom.as_dict()
    results = write_results(out, summaries, header)
    print(format_summary_table(summaries))
    if headroom is not None:
        print("\n" + format_headroom(headroom))
    elif no_headroom:
        say(f"note: {no_headroom}")
    warning = cut_warning(summaries, args.max_tokens)
    if warning:
        say(f"note: {warning}")
    say(f"answers: {log.path}\nsummary: {results}")
    return 0
