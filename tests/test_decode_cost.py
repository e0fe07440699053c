"""`coolfusion bench --decode-costs`: what a decode of k tokens costs, and what drafting could save."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from coolfusion_local.measure.decode_cost import DecodeCost, format_decode_costs

CONFIG = Path(__file__).resolve().parents[1] / "models.toml"


def test_savings_per_token_and_the_verdict_lines():
    # A compute-bound CPU (batches cost what their tokens cost) beside a GPU-like curve.
    cpu = DecodeCost("cpu-lead", exact_batch=3, ms={1: 16.0, 2: 32.0, 3: 48.0, 4: 52.0, 8: 72.0, 16: 96.0})
    gpu = DecodeCost("gpu-lead", exact_batch=16, ms={1: 4.0, 2: 4.1, 3: 4.2, 4: 4.2, 8: 4.4, 16: 4.8})
    assert cpu.saving(3) == pytest.approx(0.0) and cpu.best(3) == 1
    assert cpu.best() == 16 and cpu.saving(16) == pytest.approx(1 - 6 / 16)
    assert gpu.best() == 16 and gpu.saving(16) == pytest.approx(1 - 0.3 / 4)
    table = format_decode_costs([cpu, gpu])
    assert "cpu-lead: checks in exact batches (draft = \"auto\", up to 3) save at most 0%" in table
    assert "one-batch checks (\"batch\") at most 62% (at 16 tokens" in table
    assert "gpu-lead: checks in exact batches (draft = \"auto\", up to 16) save at most 92%" in table
    ms_per_token = next(line for line in table.splitlines() if line.strip().startswith("ms/token"))
    assert ms_per_token.split() == ["ms/token", "16.0", "16.0", "16.0", "13.0", "9.0", "6.0"]
    assert format_decode_costs([]) == "no local model to measure"
    # A probe that stopped at its largest size says so: larger batches may be exact too.
    capped = format_decode_costs([DecodeCost("drafter", exact_batch=8, ms={1: 5.0, 2: 6.0}, exact_capped=True)])
    assert capped.splitlines()[2].split()[-1] == "8+" and "(draft = \"auto\", up to 8+)" in capped
    # A model whose timing crashed is named under the table, with why; alone, it is all there is.
    crashed = DecodeCost("gpu-partner", exact_batch=1, failure="llama.cpp crashed (SIGSEGV) timing its decodes")
    assert format_decode_costs([cpu, crashed]).splitlines()[-1] == (
        "gpu-partner: not measured: llama.cpp crashed (SIGSEGV) timing its decodes")
    assert format_decode_costs([crashed]) == "gpu-partner: not measured: llama.cpp crashed (SIGSEGV) timing its decodes"
    assert crashed.as_dict()["error"].startswith("llama.cpp crashed") and "error" not in cpu.as_dict()


@pytest.mark.models
def test_timing_decodes_leaves_the_answer_as_it_was(offline_members):
    from coolfusion_local.engine.events import AnswerDone, Message
    from coolfusion_local.engine.fusion import generate
    from coolfusion_local.engine.modes import answer_settings

    (member,) = offline_members("smollm2-135m")

    def answer() -> str:
        member.model.forget()
        events = generate([member], [Message("user", "Name three colours.")], answer_settings(max_tokens=12))
        return next(e for e in events if isinstance(e, AnswerDone)).text

    before = answer()
    timings = member.model.time_decodes(8, 3)
    assert len(timings) == 3 and all(t > 0 for t in timings)
    assert answer() == before
    # In the middle of an answer too: the spare sequence is not the answer's.
    held = member.model.answer_tokens
    member.model.time_decodes(4, 1)
    assert member.model.answer_tokens == held


@pytest.mark.models
def test_bench_decode_costs_on_the_real_models():
    command = [sys.executable, "-m", "coolfusion_local", "bench", "--config", str(CONFIG), "--decode-costs", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    costs = json.loads(done.stdout)["decode_costs"]
    assert [c["model"] for c in costs] == ["qwen-coder-0.5b", "smollm2-135m"]
    for cost in costs:
        assert list(cost["ms_per_decode"]) == ["1", "2", "3", "4", "8", "16"]
        assert all(ms > 0 for ms in cost["ms_per_decode"].values()) and cost["exact_batch"] >= 1
