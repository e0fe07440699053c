"""`coolfusion eval diff RUN_FOLDER`: each fusion mode against the lead alone, problem by problem.

Reads an eval run folder (answers.jsonl, results.json) and prints the paired
comparison with a bootstrap interval, then the problems where fusion and the
lead part in correctness and the segment where their answers part.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import CoolfusionError
from ..measure.eval_diff import diff_run, format_diff
from ..measure.headroom import format_capture, format_headroom
from ..measure.paired import DEFAULT_RESAMPLES, DEFAULT_SEED, MAX_RESAMPLES, MAX_SEED
from .eval_headroom import for_run


def register(benchmarks: argparse._SubParsersAction) -> None:
    parser = benchmarks.add_parser(
        "diff", help="compare the fusion modes of a run with the lead alone, problem by problem",
        description="Paired comparison of each fusion mode in an eval run folder with one solo mode "
                    "(the lead's by default): counts, difference with a bootstrap 95% interval, and "
                    "the segment where each differing answer parts from the solo one.")
    parser.add_argument("folder", type=Path, metavar="RUN_FOLDER", help="the --out folder of `coolfusion eval gsm8k`")
    parser.add_argument("--against", metavar="MODE", default=None,
                        help="the baseline mode, e.g. solo:NAME (default: solo: the model the run's fusion led with)")
    parser.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES, metavar="N",
                        help=f"bootstrap resamples, 1 to {MAX_RESAMPLES:,} (default {DEFAULT_RESAMPLES})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, metavar="N",
                        help=f"bootstrap seed, 0 to {MAX_SEED} (default {DEFAULT_SEED}): "
                             "the same seed gives the same interval")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the text report")
    parser.set_defaults(func=run_diff)


def run_diff(args: argparse.Namespace) -> int:
    if args.resamples < 1:
        raise CoolfusionError("--resamples must be at least 1", exit_code=2)
    if args.resamples > MAX_RESAMPLES:  # each resample keeps one float: 10^9 of them would take 8 GB
        raise CoolfusionError(f"--resamples must be at most {MAX_RESAMPLES:,}", exit_code=2)
    if not 0 <= args.seed <= MAX_SEED:
        raise CoolfusionError(f"--seed must be between 0 and {MAX_SEED}", exit_code=2)
    report = diff_run(args.folder, args.against, args.resamples, args.seed)
    headroom, captures = for_run(report.run, report.against)  # the solo answers' headroom and what each fused mode won of it
    if args.json:
        document = report.as_dict()
        if headroom is not None:
            document["headroom"] = headroom.as_dict()
            document["headroom_captured"] = [c.as_dict() for c in captures]
        print(json.dumps(document, ensure_ascii=False))
    else:
        print(format_diff(report))
        if headroom is not None:
            print("\n" + format_headroom(headroom))
            if captures:
                print("\n" + format_capture(captures, headroom.lead))
    return 0
