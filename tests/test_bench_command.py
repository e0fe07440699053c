"""`coolfusion bench`: tokens/s alone and fused, where a segment's time goes, memory against its target."""

from __future__ import annotations

import json
from dataclasses import replace
import subprocess
import sys
from pathlib import Path

import gguf
import pytest

from coolfusion_local.measure.bench import (
    BenchReport,
    MemoryCheck,
    ModeBench,
    RunMeasure,
    format_bench_table,
    kv_cache_bytes,
)
from coolfusion_local.cli import main

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "models.toml"


def measure(mode, tokens, seconds, prompt_seconds=0.5, segments=10, decisions=None, lead="a", draft=(0, 0),
            lead_decodes=0, **timings) -> RunMeasure:
    return RunMeasure(mode=mode, prompt="math", stop_reason="max_tokens", answer_tokens=tokens, seconds=seconds,
                      prompt_seconds=prompt_seconds, segments=segments,
                      timings={f"{name}_seconds": value for name, value in timings.items()},
                      decisions=decisions or {}, decoded_tokens={}, lead=lead, draft_offered=draft[0],
                      draft_accepted=draft[1], lead_decodes=lead_decodes)


def report(peak_rss=900_000_000) -> BenchReport:
    # a: 100 tokens in 2 s of generation (20 ms/token); b: 100 in 1 s (10 ms/token).
    solo = (ModeBench("solo:a", (measure("solo:a", 100, 2.5, propose=1.8, boundary=0.1),)),
            ModeBench("solo:b", (measure("solo:b", 60, 0.8), measure("solo:b", 40, 0.7))))
    cool = ModeBench("cool", (measure("cool", 100, 6.5, segments=50, propose=3.0, score=1.0, commit=0.25,
                                      boundary=0.5, decisions={"agreed": 30, "vetoed": 5, "scored": 15}),))
    adaptive = ModeBench("adaptive", (measure("adaptive", 100, 3.5, segments=50, propose=1.5, catch_up=0.5,
                                              decisions={"agreed": 20, "confident": 25, "scored": 5}),))
    memory = MemoryCheck(peak_rss=peak_rss, model_files={"a": 500_000_000, "b": 100_000_000},
                         kv_caches={"a": 50_000_000, "b": None})
    return BenchReport(models=("a", "b"), prompts=("math",), max_tokens=128, solo=solo, fused=(cool, adaptive),
                       memory=memory)


def test_speed_figures_exclude_prompt_time():
    solo_a, solo_b = report().solo
    assert solo_a.tokens_per_second == pytest.approx(50.0)
    assert solo_b.seconds_per_token == pytest.approx(0.005)


def test_overhead_ratio_is_fused_time_per_token_over_the_solo_sum():
    r = report()
    assert r.solo_seconds_per_token_sum == pytest.approx(0.02 + 0.005)
    assert r.overhead_ratio(r.fused[0]) == pytest.approx(0.06 / 0.025)
    assert r.overhead_ratio(r.fused[1]) == pytest.approx(0.03 / 0.025)


def test_segment_time_split_folds_catch_up_into_propose_and_rest_into_other():
    cool, adaptive = report().fused
    assert cool.segment_split_ms() == pytest.approx(
        {"propose": 60.0, "score": 20.0, "commit": 5.0, "boundary": 10.0, "draft": 0.0, "other": 25.0})
    assert adaptive.segment_split_ms() == pytest.approx(
        {"propose": 40.0, "score": 0.0, "commit": 0.0, "boundary": 0.0, "draft": 0.0, "other": 20.0})
    assert adaptive.decision_shares() == pytest.approx(
        {"agreed": 40.0, "sure": 0.0, "number": 0.0, "vetoed": 0.0, "scored": 10.0, "confident": 50.0, "forced": 0.0})


def test_repeated_passes_show_their_spread():
    # Pass 0: a 20 ms/token, b 5, cool 30 (ratio 1.2); pass 1: a 22, b 5, cool 40.5 (ratio 1.5).
    solo = (ModeBench("solo:a", (replace(measure("solo:a", 100, 2.5), repeat=0),
                                 replace(measure("solo:a", 100, 2.7), repeat=1))),
            ModeBench("solo:b", (replace(measure("solo:b", 100, 1.0), repeat=0),
                                 replace(measure("solo:b", 100, 1.0), repeat=1))))
    cool = ModeBench("cool", (replace(measure("cool", 100, 3.5), repeat=0),
                              replace(measure("cool", 100, 4.55), repeat=1)))
    r = BenchReport(models=("a", "b"), prompts=("math",), max_tokens=128, solo=solo, fused=(cool,),
                    memory=report().memory)
    assert cool.seconds_per_token_by_repeat() == pytest.approx([0.030, 0.0405])
    assert r.overhead_ratio_by_repeat(cool) == pytest.approx([1.2, 1.5])
    row = format_bench_table(r).splitlines()[4].split()
    assert row[:4] == ["cool", "28.4", "35.2±7.4", "1.36±0.21"]
    assert r.as_dict()["fused"][0]["overhead_ratio_by_repeat"] == [1.2, 1.5]


def test_drafting_columns_acceptance_segments_per_lead_decode_and_ratio_to_the_lead():
    r = report()
    # Two answers drafted: 30 of 40 and 10 of 20 guess tokens accepted; 50 segments in 25 lead decodes.
    drafted = ModeBench("cool", (measure("cool", 60, 1.3, segments=30, draft=(40, 30), lead_decodes=15,
                                         propose=0.3, check=0.2),
                                 measure("cool", 40, 0.9, segments=20, draft=(20, 10), lead_decodes=10)))
    assert drafted.draft_acceptance == pytest.approx(40 / 60)
    assert drafted.segments_per_lead_decode == pytest.approx(2.0)
    assert drafted.segment_split_ms()["draft"] == pytest.approx(1000 * 0.2 / 50)  # check time goes to "draft"
    r = replace(r, fused=(drafted,))
    assert r.lead_ratio(drafted) == pytest.approx((1.2 / 100) / 0.02)  # 12 ms/token against a's 20 alone
    row = format_bench_table(r).splitlines()[4].split()
    assert row[0] == "cool" and row[4] == "0.60" and row[-2:] == ["67%", "2.00"]
    assert report().fused[0].draft_acceptance is None  # nothing drafted: "-", not 0%


def test_memory_target_is_files_plus_kv_plus_15_percent():
    memory = report().memory
    assert memory.target == int(1.15 * 650_000_000)
    assert memory.within is False
    assert report(peak_rss=700_000_000).memory.within is True
    assert report(peak_rss=None).memory.within is None


def test_table_and_json():
    r = report()
    lines = format_bench_table(r).splitlines()
    assert lines[0].split() == ["mode", "tok/s", "ms/tok", "ratio", "vs", "lead", "propose", "score", "commit",
                                "boundary", "draft", "other", "agreed", "sure", "number", "vetoed", "scored", "confident",
                                "drafted",
                                "seg/lead-dec"]
    assert lines[2].split() == ["solo:a", "50.0", "20.0", "-", "-", "180.0", "0.0", "0.0", "10.0", "0.0", "10.0",
                                "-", "-", "-", "-", "-", "-", "-", "-"]
    assert lines[4].split() == ["cool", "16.7", "60.0", "2.40", "3.00", "60.0", "20.0", "5.0", "10.0", "0.0", "25.0",
                                "60%", "0%", "0%", "10%", "30%", "0%", "-", "-"]
    assert lines[-1] == ("memory: peak RSS 900 MB vs target 748 MB (files a 500 MB + b 100 MB; "
                         "KV caches 50 MB + ?; +15%): OVER target")
    data = json.loads(json.dumps(r.as_dict()))
    assert data["fused"][0]["overhead_ratio"] == 2.4
    assert data["fused"][0]["lead_ratio"] == 3.0  # 60 ms/token against a's 20 alone
    assert data["fused"][1]["ms_per_segment"]["propose"] == 40.0
    assert data["memory"]["within_target"] is False


def test_kv_cache_size_from_gguf_head_dims(tmp_path):
    # Qwen2.5-0.5B's shape: llama.cpp logs "llama_kv_cache: size = 48.00 MiB" for it at n_ctx 4096.
    path = tmp_path / "shape.gguf"
    writer = gguf.GGUFWriter(str(path), "qwen2")
    writer.add_block_count(24)
    writer.add_head_count(14)
    writer.add_head_count_kv(2)
    writer.add_embedding_length(896)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert kv_cache_bytes(path, 4096) == 48 * 2**20
    assert kv_cache_bytes(tmp_path / "missing.gguf", 4096) is None


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--prompts", "0"], "--prompts must be between 1 and 3"),
        (["--max-tokens", "0"], "--max-tokens must be at least 1"),
        (["--repeat", "0"], "--repeat must be between 1 and 20"),
        (["--modes", "solo"], "unknown mode 'solo'; choose from: cool, cool+r, adaptive"),
        (["--models", "nobody"], "no model named 'nobody'"),
    ],
)
def test_usage_errors_are_one_line_exit_2(argv, message, capsys):
    assert main(["bench", "--config", str(CONFIG), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


@pytest.mark.models
def test_bench_on_the_real_models():
    command = [sys.executable, "-m", "coolfusion_local", "bench", "--config", str(CONFIG),
               "--prompts", "1", "--max-tokens", "16", "--repeat", "2", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert [b["mode"] for b in data["solo"]] == ["solo:qwen-coder-0.5b", "solo:smollm2-135m"]
    assert [b["mode"] for b in data["fused"]] == ["cool", "adaptive", "cool+r"]
    for bench in data["solo"] + data["fused"]:
        assert bench["answer_tokens"] >= 16 and bench["tokens_per_second"] > 0
    cool = data["fused"][0]
    assert cool["overhead_ratio"] > 0
    assert sum(cool["decision_shares"][d] for d in ("agreed", "sure", "number", "vetoed", "scored")) == pytest.approx(100, abs=0.2)
    assert len(cool["overhead_ratio_by_repeat"]) == 2 and len(cool["ms_per_token_by_repeat"]) == 2
    memory = data["memory"]
    assert memory["peak_rss"] > sum(memory["model_files"].values()) / 2
    assert memory["model_files"]["qwen-coder-0.5b"] == 491_400_064
    assert memory["kv_caches"]["qwen-coder-0.5b"] == 48 * 2**20
