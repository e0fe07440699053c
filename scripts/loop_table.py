"""How often answers loop: each model alone and fused, greedy vs the chat defaults.

    flock /tmp/cf-models.lock python scripts/loop_table.py --out loops.jsonl --budget-seconds 420
    python scripts/loop_table.py --out loops.jsonl --report

Answers the open chat prompts of tests/data/chat_prompts.jsonl in every
(mode, sampling) pair, appending one JSON line per answer to --out; a second
run carries on where the first stopped (so it can run in chunks). "Greedy" is
the engine as eval and bench run it (no loop guard); "chat" is the chat app's
defaults (engine/sampling.py's CHAT, seed 1000 + prompt id) with the loop
guard. An answer loops when some 5-word run of its prose occurs 3 times
(engine/repetition.py) or when the loop guard had to end it (stop reason
"loop"); "guard acted" counts answers where it passed over a looping
candidate at least once.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from coolfusion_local.engine.repetition import repeated_run  # noqa: E402
from coolfusion_local.engine.sampling import CHAT  # noqa: E402

SAMPLINGS = ("greedy", "chat")


def jobs(prompts: list[dict], modes: list[str]) -> list[tuple[dict, str, str]]:
    """Mode by mode (the first one, fused, is the table that matters most), prompt by prompt."""
    return [(p, mode, sampling) for mode in modes for p in prompts for sampling in SAMPLINGS]


def answer(engine, prompt: dict, mode: str, sampling: str, max_tokens: int) -> dict:
    from coolfusion_local.engine import AnswerDone, Message

    engine.forget_cached_text()
    chat = sampling == "chat"
    started = time.perf_counter()
    events = engine.generate(
        [Message("user", prompt["prompt"])], mode=mode, max_tokens=max_tokens,
        sampling=replace(CHAT, seed=1000 + prompt["id"]) if chat else None, loop_guard=chat,
    )
    done = next(event for event in events if isinstance(event, AnswerDone))
    run = repeated_run(done.text)
    return {
        "id": prompt["id"], "kind": prompt["kind"], "mode": mode, "sampling": sampling,
        "stop_reason": done.stop_reason, "loops": run is not None or done.stop_reason == "loop",
        "repeated": run, "guard_acted": done.stats.decisions.get("unlooped", 0) > 0,
        "tokens": done.stats.answer_tokens, "seconds": round(time.perf_counter() - started, 2),
        "max_tokens": max_tokens, "text": done.text,
    }


def report(records: list[dict]) -> str:
    groups: dict[tuple[str, str], list[dict]] = {}
    for record in records:
        groups.setdefault((record["mode"], record["sampling"]), []).append(record)
    lines = ["| mode | sampling | answers | loop | guard acted | stop reasons |", "|---|---|---:|---:|---:|---|"]
    for (mode, sampling), group in sorted(groups.items()):
        loops = sum(r["loops"] for r in group)
        acted = sum(r["guard_acted"] for r in group)
        reasons: dict[str, int] = {}
        for r in group:
            reasons[r["stop_reason"]] = reasons.get(r["stop_reason"], 0) + 1
        stops = ", ".join(f"{reason} {count}" for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1]))
        lines.append(f"| {mode} | {sampling} | {len(group)} | {loops} ({100 * loops / len(group):.0f}%) | "
                     f"{acted} | {stops} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=Path, default=REPO / "tests" / "data" / "chat_prompts.jsonl")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--config", type=Path)
    parser.add_argument("--modes", default="cool,solo:qwen-coder-0.5b,solo:smollm2-135m")
    parser.add_argument("--max-tokens", type=int, default=200)
    parser.add_argument("--budget-seconds", type=float, default=420, help="start no answer after this long")
    parser.add_argument("--report", action="store_true", help="print the table of --out and stop")
    args = parser.parse_args()
    done = [json.loads(line) for line in args.out.read_text().splitlines() if line.strip()] if args.out.exists() else []
    if args.report:
        print(report(done))
        return 0
    from coolfusion_local.fusion_engine import FusionEngine, load_config

    started = time.monotonic()
    prompts = [json.loads(line) for line in args.prompts.read_text().splitlines() if line.strip()]
    seen = {(r["id"], r["mode"], r["sampling"]) for r in done}
    todo = [job for job in jobs(prompts, args.modes.split(",")) if (job[0]["id"], job[1], job[2]) not in seen]
    with FusionEngine(load_config(args.config)) as engine:
        for _ in engine.load():
            pass
        for prompt, mode, sampling in todo:
            if time.monotonic() - started > args.budget_seconds:
                break
            record = answer(engine, prompt, mode, sampling, args.max_tokens)
            with args.out.open("a") as stream:
                stream.write(json.dumps(record, ensure_ascii=False) + "\n")
            print(f"#{prompt['id']} {mode} {sampling}: {record['stop_reason']}, loops={record['loops']}, "
                  f"{record['tokens']} tokens, {record['seconds']}s", file=sys.stderr, flush=True)
    left = len(todo) - (sum(1 for _ in open(args.out)) - len(done) if args.out.exists() else 0)
    print(f"{left} answers left", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
