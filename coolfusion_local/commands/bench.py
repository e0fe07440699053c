"""`coolfusion bench`: tokens/s of each model alone and of each fusion mode, where the time goes, memory.

One process, one load of the models, the same built-in prompts for every
mode, so the numbers compare side by side. The table (or `--json`, one JSON
object) goes to stdout; loading and per-run lines to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from ..measure.bench import PROMPTS, format_bench_table, run_bench
from ..measure.decode_cost import format_decode_costs, measure_decode_costs
from ..engine.drafting import DRAFT_MODES
from ..errors import CoolfusionError
from ..fusion_engine import FusionEngine, load_config
from ..measure.eval_report import code_version
from .common import add_config_argument, configure_logging
from .run_options import add_models_argument, load_models, parse_modes, select_models


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench", help="measure speed and memory of each model alone and fused",
        description="Measure tokens/s of each model alone and of the fusion modes on built-in prompts, "
                    "where a fused segment's time goes, and peak memory.")
    add_config_argument(parser)
    add_models_argument(parser)
    parser.add_argument("--modes", default="cool,adaptive,cool+r", metavar="LIST",
                        help="fusion modes to measure (each model alone is always measured; "
                             "default: cool,adaptive,cool+r)")
    parser.add_argument("--prompts", type=int, default=len(PROMPTS), metavar="N",
                        help=f"use the first N built-in prompts ({', '.join(p.name for p in PROMPTS)}; "
                             f"default {len(PROMPTS)})")
    parser.add_argument("--max-tokens", type=int, default=128, metavar="N", help="answer length (default 128)")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="run the whole measurement N times and show the spread between passes (default 1)")
    parser.add_argument("--draft", choices=DRAFT_MODES, default=None,
                        help="drafting in the fusion modes (default: the config's [fusion] draft, auto)")
    parser.add_argument("--decode-costs", action="store_true",
                        help="instead: time each model's decodes of 1 to 16 tokens, with a logits row per token "
                             "(what a draft check costs), and say what drafting could save on this machine")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    configure_logging()
    if not 1 <= args.prompts <= len(PROMPTS):
        raise CoolfusionError(f"--prompts must be between 1 and {len(PROMPTS)}", exit_code=2)
    if args.max_tokens < 1:
        raise CoolfusionError("--max-tokens must be at least 1", exit_code=2)
    if not 1 <= args.repeat <= 20:
        raise CoolfusionError("--repeat must be between 1 and 20", exit_code=2)
    config = select_models(load_config(Path(args.config) if args.config else None), args.models)
    if args.draft is not None:
        config = replace(config, fusion=replace(config.fusion, draft=args.draft))
    names = [spec.name for spec in config.enabled_models]
    modes = parse_modes(args.modes, names, allow_solo=False)

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    with FusionEngine(config) as engine:
        load_models(engine, names, say)
        if args.decode_costs:
            return _decode_costs(engine, names, say, args.json)
        say(f"bench: {len(names)} models alone, then {', '.join(modes)}; "
            f"{args.prompts} prompts, {args.max_tokens} tokens each"
            + (f", {args.repeat} passes" if args.repeat > 1 else ""))
        report = run_bench(engine, names, modes, PROMPTS[: args.prompts], args.max_tokens, say, args.repeat)
    if args.json:
        print(json.dumps({**report.as_dict(), "code": code_version()}, ensure_ascii=False))
    else:
        print(format_bench_table(report))
    return 0


def _decode_costs(engine, names: list[str], say, as_json: bool) -> int:
    say("timing decodes of 1 to 16 tokens (median of 6 each)")
    costs = measure_decode_costs([engine.member(name).model for name in names], say=say)
    if as_json:
        print(json.dumps({"decode_costs": [c.as_dict() for c in costs], "code": code_version()}))
    else:
        print(format_decode_costs(costs))
    return 1 if any(cost.failure for cost in costs) else 0  # the rest is printed all the same
