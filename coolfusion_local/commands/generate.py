"""`coolfusion generate "PROMPT"`: one fused answer, streamed to stdout.

Plain output prints the answer as segments are chosen; `--json` prints one
JSON object per event line (segments, notices, Cool+R steps) and a last
`{"done": true, ...}` line, for scripts and for inspecting who won what.
Loading messages go to stderr so stdout stays the answer.

It samples like the chat app (models.toml's [fusion] sampling, by default the
chat defaults of docs/sampling.md) and guards against verbatim loops; the
sampling flags override single values, `--temperature 0` is greedy.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from dataclasses import replace
from pathlib import Path

from ..engine import (
    AnswerDone,
    AnswerReranked,
    Message,
    Notice,
    SegmentChosen,
    SoloAnswerStarted,
    SoloTextDelta,
)
from ..engine.modes import FUSION_MODES
from ..errors import CoolfusionError
from ..fusion_engine import FusionEngine, load_config
from .common import add_config_argument, configure_logging, describe_load_event
from .sampling_options import add_sampling_arguments, sampling_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("generate", help="answer one prompt with the fused models")
    parser.add_argument("prompt", help="the question or instruction (use - to read it from stdin)")
    add_config_argument(parser)
    parser.add_argument("--mode", help=f"{', '.join(FUSION_MODES)} or solo:NAME (default: the config's)")
    parser.add_argument("--max-tokens", type=int, help="stop after at most this many answer tokens (the lead model's)")
    parser.add_argument("--stop", action="append", help="stop when the answer contains this text (repeatable)")
    parser.add_argument("--system", help="a system message before the prompt")
    parser.add_argument("--json", action="store_true", help="print one JSON object per event line")
    parser.add_argument("--quiet", "-q", action="store_true", help="no loading messages on stderr")
    parser.add_argument("--no-loop-guard", dest="loop_guard", action="store_false", default=None,
                        help="let verbatim loops win (default: the config's loop_guard, on)")
    add_sampling_arguments(parser, "models.toml's [fusion] values (the chat defaults)")
    parser.set_defaults(func=run)


# What one `--json` line of a segment holds (docs: README's command table).
_JSON_SEGMENT_KEYS = ("index", "text", "winner", "proposers", "decision", "candidates", "ends", "scores", "seconds")


def _segment_record(event: SegmentChosen) -> dict:
    record = event.as_record()
    return {key: record[key] for key in _JSON_SEGMENT_KEYS}


def run(args: argparse.Namespace) -> int:
    configure_logging()
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    if args.max_tokens is not None and args.max_tokens < 1:
        raise CoolfusionError("--max-tokens must be at least 1", exit_code=2)
    config = load_config(Path(args.config) if args.config else None)
    sampling = sampling_from_args(args, config.fusion.sampling)
    out = sys.stdout

    def say(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    def emit(record: dict) -> None:
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        out.flush()

    cancel = threading.Event()
    with FusionEngine(config, mode=args.mode) as engine:
        for event in engine.load():
            for line in describe_load_event(event):
                say(line)
        messages = ([Message("system", args.system)] if args.system else []) + [Message("user", prompt)]
        events = engine.generate(messages, max_tokens=args.max_tokens, stop=args.stop, sampling=sampling,
                                 loop_guard=args.loop_guard, cancel=cancel)
        final = None
        try:
            for event in events:
                if isinstance(event, SegmentChosen):
                    if args.json:
                        emit(_segment_record(event))
                    else:
                        out.write(event.text)
                        out.flush()
                elif isinstance(event, Notice):
                    emit({"notice": event.message}) if args.json else say(f"note: {event.message}")
                elif isinstance(event, SoloAnswerStarted):
                    emit({"solo_started": event.model}) if args.json else say(f"cool+r: {event.model} answers alone")
                elif isinstance(event, SoloTextDelta):
                    if args.json:
                        emit({"solo": event.model, "text": event.text})
                elif isinstance(event, AnswerReranked):
                    if args.json:
                        emit({"reranked": event.chosen, "scores": event.scores, "answers": event.answers})
                    else:
                        say(f"cool+r: the {event.chosen} answer has the lowest perplexity")
                        if event.chosen != "fused":
                            out.write(f"\n\n[{event.chosen}'s answer]\n{event.text}")
                elif isinstance(event, AnswerDone):
                    final = event
        except KeyboardInterrupt:
            events.close()
            if args.json:
                emit({"done": True, "stop_reason": "stopped", "stats": {}})
            else:
                out.write("\n")
            raise
        if final is None:
            return 1
        if args.json:
            emit(
                {
                    "done": True,
                    "stop_reason": final.stop_reason,
                    "text": final.text,
                    "error": final.error,
                    "failed_model": final.failed_model,
                    "stats": final.stats.as_dict(),
                }
            )
        elif final.stop_reason != "error":
            out.write("\n")
            stats = final.stats
            say(
                f"[{final.stop_reason}] {stats.answer_tokens} tokens in {stats.generate_seconds:.1f}s "
                f"({stats.tokens_per_second:.1f} tok/s, {stats.segments} segments, wins {stats.wins}"
                + (f", drafts by {stats.drafter} {100 * stats.draft_acceptance:.0f}% accepted"
                   if stats.draft_acceptance is not None else "")
                + f"; {replace(sampling, seed=stats.sampling.get('seed')).summary()})"
            )
        if final.stop_reason == "error":
            raise CoolfusionError(final.error or "generation failed")
    return 0
