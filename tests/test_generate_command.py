"""`coolfusion generate`, run as a user runs it, on the repository's offline models."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.models

QUESTION = (
    "Question: Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?"
)


def coolfusion(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "coolfusion_local", *args],
        capture_output=True, text=True, timeout=timeout, cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


def test_json_stream_with_the_default_models(tmp_path):
    # The shipped models without the lead-sure guard, which on some CPUs settles every round of this
    # answer for the lead: this test is about both tokenizer families winning segments.
    config = tmp_path / "models.toml"
    unguarded = "[fusion]\nsure_margin = 1.0\nkeep_numbers = false\n"
    config.write_text((REPO / "models.toml").read_text().replace("[fusion]\n", unguarded, 1))
    result = coolfusion("generate", "--config", str(config), "--json", "--max-tokens", "160", "--mode", "cool",
                        QUESTION)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    segments, last = records[:-1], records[-1]
    assert last["done"] is True and last["stop_reason"] in ("eos", "max_tokens")
    assert set(last["stats"]) >= {"tokens_per_second", "segments", "wins", "decisions", "propose_seconds"}
    assert "".join(s["text"] for s in segments) == last["text"]
    for segment in segments:
        assert set(segment) >= {"text", "winner", "candidates", "scores"}
        assert set(segment["candidates"]) == {"qwen-coder-0.5b", "smollm2-135m"}
    # Both tokenizer families contribute: segments are won by more than one model.
    assert len({s["winner"] for s in segments}) >= 2
    assert any(s["decision"] == "scored" and len(s["scores"]) == 2 for s in segments)


def test_plain_output_streams_the_answer_and_stats_go_to_stderr():
    result = coolfusion("generate", "--max-tokens", "12", "Say hello.")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert "tok/s" in result.stderr and "loaded qwen-coder-0.5b" in result.stderr


def test_solo_mode_runs_one_model_through_the_same_path():
    result = coolfusion("generate", "--json", "--mode", "solo:smollm2-135m", "--max-tokens", "12", "Say hello.")
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert {r["winner"] for r in records[:-1]} == {"smollm2-135m"}
    assert {r["decision"] for r in records[:-1]} == {"solo"}


def test_cool_plus_r_reports_the_rerank():
    result = coolfusion("generate", "--json", "--mode", "cool+r", "--max-tokens", "16", "What is 6 times 7?")
    records = [json.loads(line) for line in result.stdout.splitlines()]
    reranked = [r for r in records if "reranked" in r]
    assert len(reranked) == 1
    assert reranked[0]["reranked"] in ("fused", "qwen-coder-0.5b", "smollm2-135m")
    assert set(reranked[0]["answers"]) == {"fused", "qwen-coder-0.5b", "smollm2-135m"}
    assert records[-1]["text"] == reranked[0]["answers"][reranked[0]["reranked"]]


def test_unknown_mode_is_one_line_and_exit_2():
    result = coolfusion("generate", "--mode", "turbo", "hi")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "unknown mode 'turbo'" in result.stderr
