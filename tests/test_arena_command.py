"""`coolfusion arena run` and `arena report`, run as a user runs them, on the repository's offline models:
bad prompt lines get one line each and the good ones run, a second run resumes (and finishes a comparison
interrupted before both answers were in), and the report and export read what was kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO

from coolfusion_local.arena.comparisons import Comparison, ComparisonLog
from coolfusion_local.fusion_engine import load_config
from coolfusion_local.tui.store import Store

pytestmark = pytest.mark.models

PROMPTS = (
    "What is the capital of Italy?\n"
    "# a comment\n"
    '{"prompt": 42}\n'
    '{"prompt": "Name a yellow fruit.", "system": "Answer in one short sentence."}\n'
    "{broken json\n"
)


def coolfusion(data_dir, *args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "coolfusion_local", *args],
        capture_output=True, text=True, timeout=timeout, cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "COOLFUSION_DATA_DIR": str(data_dir)},
    )


def kept(data_dir) -> list[Comparison]:
    store = Store(data_dir / "history.sqlite3")
    try:
        return ComparisonLog(store).all()
    finally:
        store.close()


def test_a_prompt_file_with_bad_lines_runs_the_good_ones_and_resumes(tmp_path):
    data = tmp_path / "data"
    prompts = tmp_path / "prompts.txt"
    prompts.write_text(PROMPTS)
    run = ["arena", "run", "--prompts", str(prompts), "--max-tokens", "8"]
    first = coolfusion(data, *run)
    assert first.returncode == 0, first.stderr
    bad = [line for line in first.stderr.splitlines() if line.startswith(f"coolfusion: {prompts}:")]
    assert len(bad) == 2 and ":3: " in bad[0] and ":5: not valid JSON" in bad[1], first.stderr
    assert "Traceback" not in first.stderr
    comparisons = kept(data)
    # The default pairing: the shipped config's fusion mode against the lead alone.
    fused = load_config(REPO / "models.toml").fusion.mode
    assert [(c.prompt, c.state, c.pairing) for c in comparisons] == [
        ("What is the capital of Italy?", "ready", f"{fused} vs solo:qwen-coder-0.5b"),
        ("Name a yellow fruit.", "ready", f"{fused} vs solo:qwen-coder-0.5b"),
    ]
    yellow = comparisons[1]
    assert yellow.context[0].role == "system" and yellow.seed is not None
    assert {yellow.answer_a.stats["system"], yellow.answer_b.stats["system"]} == {fused, "solo:qwen-coder-0.5b"}
    assert "2 comparisons wait for a vote" in first.stderr

    # A question the chat asked before a crash: the next run finishes it; nothing else is asked again.
    store = Store(data / "history.sqlite3")
    interrupted = Comparison(pairing="cool vs solo:qwen-coder-0.5b", system_a="solo:qwen-coder-0.5b",
                             system_b="cool", context=[], prompt="Say yes.",
                             settings={"sampling": {"temperature": 0.0}, "max_tokens": 6}, seed=None)
    ComparisonLog(store).add(interrupted)
    store.close()
    second = coolfusion(data, *run)
    assert second.returncode == 0, second.stderr
    assert "1 to answer, 1 of them interrupted before" in second.stderr
    states = {c.prompt: c.state for c in kept(data)}
    assert states == {"What is the capital of Italy?": "ready", "Name a yellow fruit.": "ready", "Say yes.": "ready"}

    report = coolfusion(data, "arena", "report", "--json", "--export", str(tmp_path / "all.jsonl"))
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["pending"] == 3
    exported = [json.loads(line) for line in (tmp_path / "all.jsonl").read_text().splitlines()]
    assert len(exported) == 3 and all(e["answer_a"]["text"] is not None for e in exported)
    assert (tmp_path / "all.jsonl").stat().st_mode & 0o077 == 0
