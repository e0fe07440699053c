"""`coolfusion arena report|run`: the blind A/B arena's results, and answering prompt files ahead.

`report` reads the comparisons kept in the history database (the chat's F4 arena
and `arena run` write them). `run` answers a prompt file with every chosen
pairing and leaves each comparison pending, so the chat's arena screen can walk
through them for votes without waiting for the models; it resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

from ..arena.answering import answer_comparison, lead_name, settings_for
from ..arena.comparisons import Comparison, ComparisonLog
from ..arena.pairings import Pairing, all_pairings, check_system, default_pairing, draw_order
from ..arena.plan import plan_jobs
from ..arena.prompts import read_prompts, starter_prompts_path
from ..arena.report import build_report, format_report
from ..engine.modes import solo_name
from ..errors import CoolfusionError
from ..files import replace_text
from ..fusion_engine import FusionEngine, load_config
from ..tui.store import Store
from .common import add_config_argument, configure_logging, describe_load_event
from .run_options import load_models
from .sampling_options import add_sampling_arguments, sampling_from_args

DEFAULT_RUN_MAX_TOKENS = 256


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "arena", help="blind A/B comparisons: the report, or answering a prompt file ahead",
        description="The blind A/B arena. Vote in `coolfusion chat` (F4); read the results here.",
    )
    actions = parser.add_subparsers(dest="arena_action", metavar="report | run")

    report = actions.add_parser("report", help="wins, ties, losses, win rate with its 95%% interval, per pairing",
                                description="Per pairing: wins, ties, losses and both-bad, the win rate with a "
                                            "Wilson 95%% interval and the votes a difference needs; position bias; "
                                            "a Bradley-Terry table when more than two systems were compared.")
    report.add_argument("--json", action="store_true", help="print the report as one JSON object")
    report.add_argument("--export", type=Path, metavar="FILE",
                        help="also write every comparison (prompts, both answers, systems, votes) as JSON Lines")
    report.set_defaults(func=run_report)

    run = actions.add_parser("run", help="answer a prompt file with every pairing, for voting later",
                             description="Answer every prompt with both systems of every pairing and keep the pairs "
                                         "pending: F4 in `coolfusion chat` then walks through them for votes. "
                                         "Running it again resumes.")
    run.add_argument("--prompts", type=Path, required=True, metavar="FILE",
                     help="one prompt per line, or JSON Lines with \"prompt\" (and \"system\"); "
                          "`starter` uses the shipped starter prompts")
    run.add_argument("--pairing", action="append", metavar="X,Y",
                     help="two systems (cool, cool+r, adaptive, solo:NAME), e.g. cool,solo:NAME; repeatable "
                          "(default: the config's fusion mode against the lead alone)")
    run.add_argument("--systems", metavar="LIST", help="every pair among these systems, e.g. cool,adaptive,solo:NAME")
    run.add_argument("--max-tokens", type=int, default=DEFAULT_RUN_MAX_TOKENS, metavar="N",
                     help=f"answer length limit for both systems (default {DEFAULT_RUN_MAX_TOKENS})")
    add_config_argument(run)
    add_sampling_arguments(run, "models.toml's [fusion] values (as the chat samples); each comparison draws one "
                                "seed for both answers (--seed S: S + the prompt's line number)")
    run.set_defaults(func=run_prompts)

    def no_action(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=no_action)


# --------------------------------------------------------------------------- report


def run_report(args: argparse.Namespace) -> int:

    store = Store.open_default()
    try:
        comparisons = ComparisonLog(store).all()
    finally:
        store.close()
    for notice in store.take_notices():
        print(f"coolfusion: {notice}", file=sys.stderr)
    report = build_report(comparisons)
    if args.export is not None:
        lines = "".join(json.dumps(c.as_record(), ensure_ascii=False) + "\n" for c in comparisons)
        replace_text(args.export, lines, private=True)  # prompts and answers: readable by the owner only
        print(f"wrote {len(comparisons)} comparisons to {args.export}", file=sys.stderr)
    if args.json:
        print(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
    else:
        print(format_report(report))
    return 0


# --------------------------------------------------------------------------- run


def run_prompts(args: argparse.Namespace) -> int:
    configure_logging()

    if args.max_tokens < 1:
        raise CoolfusionError("--max-tokens must be at least 1", exit_code=2)
    use_starter = str(args.prompts) == "starter" and not args.prompts.exists()
    path = starter_prompts_path() if use_starter else args.prompts
    prompts, bad = read_prompts(path)
    for line in bad:
        print(f"coolfusion: {line.describe(str(args.prompts))}", file=sys.stderr)
    if not prompts:
        raise CoolfusionError(f"{args.prompts} has no prompt to answer", exit_code=2)
    config = load_config(Path(args.config) if args.config else None)
    names = [spec.name for spec in config.models]
    sampling = sampling_from_args(args, config.fusion.sampling)
    pairings = [Pairing.parse(text, names) for text in args.pairing or ()]
    if args.systems:
        systems = [check_system(s.strip(), names) for s in args.systems.split(",") if s.strip()]
        if len(set(systems)) < 2:
            raise CoolfusionError("--systems needs at least two different systems", exit_code=2)
        pairings += [p for p in all_pairings(list(dict.fromkeys(systems))) if p not in pairings]

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    store = Store.open_default()
    log = ComparisonLog(store)
    cancel = threading.Event()
    try:
        with FusionEngine(config) as engine:
            for event in engine.load():
                for line in describe_load_event(event):
                    say(line)
            if not pairings:
                pairings = [default_pairing(config.fusion.mode, lead_name(engine))]
            solo = {solo_name(s) for p in pairings for s in p.systems} - {None}
            not_loaded = [n for n in names if n in solo and n not in _loaded_names(engine)]
            if not_loaded:  # a model alone may be one models.toml leaves out of fusion
                load_models(engine, not_loaded, say)
            models = _loaded_names(engine)
            unfinished = log.unfinished()  # the chat's too: asked, then interrupted
            jobs = plan_jobs(prompts, pairings, log.all())
            todo = len(unfinished) + len(jobs)
            say(f"arena run: {len(prompts)} prompts x {len(pairings)} pairings "
                f"({', '.join(p.label for p in pairings)}); {todo} to answer"
                + (f", {len(unfinished)} of them interrupted before" if unfinished else ""))
            bar = RunProgress(todo, sys.stderr)
            rng = random.SystemRandom()
            for comparison in unfinished:
                answer_comparison(engine, comparison, cancel)
                log.save_answers(comparison)
                bar.step(comparison)
            for job in jobs:
                given = sampling if args.seed is None else replace(sampling, seed=args.seed + job.prompt.line)
                seeded = given.with_seed()
                system_a, system_b = draw_order(job.pairing, rng)
                comparison = Comparison(
                    pairing=job.pairing.label, system_a=system_a, system_b=system_b, context=job.context,
                    prompt=job.prompt.text, settings=settings_for(seeded, args.max_tokens, models),
                    seed=seeded.seed, source="run",
                )
                log.add(comparison)  # asked: an interruption from here on leaves it "answering", to finish
                answer_comparison(engine, comparison, cancel)
                log.save_answers(comparison)
                bar.step(comparison)
            bar.finish()
    finally:
        store.close()
        for notice in store.take_notices():
            say(f"coolfusion: {notice}")
    pending = len(_pending_after())
    say(f"done: {pending} comparisons wait for a vote; open `coolfusion chat` and press F4")
    return 0


def _loaded_names(engine) -> list[str]:
    return [n for n in engine.model_names if engine.status(n).info is not None]


def _pending_after() -> list:

    store = Store.open_default()
    try:
        return ComparisonLog(store).pending()
    finally:
        store.close()


class RunProgress:
    """A redrawn bar on a terminal, one line per comparison in a log or pipe. Names no side's system."""

    def __init__(self, total: int, stream) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.stream = stream
        self.interactive = stream.isatty()
        self.started = time.monotonic()

    def step(self, comparison) -> None:
        self.done += 1
        elapsed = time.monotonic() - self.started
        left = elapsed / self.done * (self.total - self.done)
        outcome = {"ready": "ready for a vote", "failed": "a system could not answer",
                   "skipped": "stopped"}.get(comparison.state, comparison.state)
        prompt = " ".join(comparison.prompt.split())
        prompt = prompt if len(prompt) <= 40 else prompt[:39] + "…"
        if self.interactive:
            filled = round(24 * self.done / self.total)
            text = f"[{'#' * filled}{'.' * (24 - filled)}] {self.done}/{self.total}  {prompt}  ~{left:.0f}s left"
            self.stream.write("\r\033[K" + text[:150])
        else:
            self.stream.write(f"[{self.done}/{self.total}] {comparison.pairing}: {prompt}: {outcome}, "
                              f"~{left:.0f}s left\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.interactive and self.done:
            self.stream.write("\n")
            self.stream.flush()
