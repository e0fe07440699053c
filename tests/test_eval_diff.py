"""`coolfusion eval diff`: the paired comparison of a run folder, its bootstrap, and where answers part.

The bootstrap and the report are checked on hand-made run folders written
through eval's own AnswerLog and write_results; the last test runs the real
`coolfusion eval gsm8k` on the real offline models and diffs its folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from coolfusion_local.cli import main
from coolfusion_local.engine import AnswerDone, GenerationStats
from coolfusion_local.engine.events import Candidate, SegmentChosen
from coolfusion_local.measure.eval_diff import NOT_RECORDED, diff_run
from coolfusion_local.measure.eval_report import summarize, write_results
from coolfusion_local.measure.evaluate import AnswerLog, AnswerRecord, EvalSettings, answer_one
from coolfusion_local.measure.gsm8k import Problem
from coolfusion_local.measure.paired import bootstrap_interval, paired_counts
from test_eval_command import eval_two_real_problems

LEAD, PARTNER = "qwen-coder-0.5b", "smollm2-135m"
SOLO = f"solo:{LEAD}"


# --------------------------------------------------------------------------- the bootstrap


def test_identical_columns_differ_by_zero_with_a_zero_width_interval():
    column = [True, False, True, True, False] * 20
    assert paired_counts(column, column).difference == 0.0
    assert bootstrap_interval(column, column) == (0.0, 0.0)


def test_a_clear_difference_gives_an_interval_that_excludes_zero():
    fused = [True] * 40 + [False] * 10
    lead = [True] * 10 + [False] * 40
    counts = paired_counts(fused, lead)
    assert (counts.both_right, counts.both_wrong, counts.mode_only, counts.baseline_only) == (10, 10, 30, 0)
    assert counts.difference == pytest.approx(60.0)
    low, high = bootstrap_interval(fused, lead)
    assert 0 < low < 60.0 < high <= 100.0
    low, high = bootstrap_interval(lead, fused)  # the other way round: all below 0
    assert -100.0 <= low < -60.0 < high < 0


def test_the_same_seed_repeats_the_interval_to_the_last_digit():
    fused = [True, False, True, False, True, True, False, True] * 5
    lead = [True, True, False, False, True, False, False, True] * 5
    first = bootstrap_interval(fused, lead, resamples=2_500, seed=7)
    assert first == bootstrap_interval(fused, lead, resamples=2_500, seed=7)
    # Two problems for fusion, one against, in every eight: +12.5 points, not a clear difference.
    assert first[0] < 0 < 12.5 < first[1]


def test_no_problems_have_no_interval():
    assert bootstrap_interval([], []) is None


# --------------------------------------------------------------------------- a hand-made run folder


def record(problem: int, mode: str, text: str, correct: bool, *, extracted: str, segment_log=None,
           chosen=None, stop_reason="eos") -> AnswerRecord:
    fused = not mode.startswith("solo:")
    return AnswerRecord(
        problem=problem, mode=mode, question=f"What is {problem}?", gold=str(problem), extracted=extracted,
        correct=correct, text=text, stop_reason=stop_reason, seconds=1.0, answer_tokens=10,
        segments=len(segment_log or []), decisions={}, wins={}, decoded_tokens={LEAD: 10},
        max_tokens=64, prompt="cot", policy="lead-veto" if fused else None, chosen=chosen, segment_log=segment_log)


def write_run(folder: Path, records: list[AnswerRecord], modes: list[str]) -> Path:
    log = AnswerLog(folder)
    for item in records:
        log.append(item)
    problems = sorted({r.problem for r in records})
    summaries = summarize(log.read(), modes, [Problem(p, p + 1, f"What is {p}?", str(p)) for p in problems])
    write_results(folder, summaries, {"benchmark": "gsm8k", "offset": problems[0], "limit": len(problems),
                                      "max_tokens": 64, "models": [LEAD, PARTNER], "fusion_rule": "lead-veto"})
    return folder


def hand_made_run(folder: Path) -> Path:
    """Problem 5: cool wrong where the lead was right, parting at a scored segment won by the partner.
    Problem 6: cool right where the lead was wrong (agreed all the way: the lead's answer went on).
    Problem 7: both right. Problem 8: an old record with no segment log, cool wrong."""
    lead_5 = "3 + 2 = 5. #### 5"
    cool_5 = [
        {"text": "3 + 2", "winner": LEAD, "decision": "agreed"},
        {"text": " = 6.", "winner": PARTNER, "decision": "scored", "forced": True,
         "candidates": {LEAD: " = 5.", PARTNER: " = 6."}, "scores": {LEAD: {LEAD: 0.1, PARTNER: 2.3}},
         "lead_margins": {PARTNER: 0.0421}},
        {"text": " #### 6", "winner": LEAD, "decision": "agreed"},
    ]
    cool_6 = [{"text": "It is 6.", "winner": LEAD, "decision": "agreed"},
              {"text": " #### 6", "winner": LEAD, "decision": "vetoed", "candidates": {LEAD: " #### 6"}}]
    records = [
        record(5, SOLO, lead_5, True, extracted="5"),
        record(5, "cool", "".join(s["text"] for s in cool_5), False, extracted="6", segment_log=cool_5),
        record(6, SOLO, "It is 6. Then 7 more #### 13", False, extracted="13", stop_reason="max_tokens"),
        record(6, "cool", "It is 6. #### 6", True, extracted="6", segment_log=cool_6),
        record(7, SOLO, "#### 7", True, extracted="7"),
        record(7, "cool", "#### 7", True, extracted="7", segment_log=[{"text": "#### 7", "winner": LEAD,
                                                                         "decision": "agreed"}]),
        record(8, SOLO, "#### 8", True, extracted="8"),
        record(8, "cool", "#### 9", False, extracted="9"),  # segment_log None, as before it was recorded
        record(5, f"solo:{PARTNER}", "#### 6", False, extracted="6"),
    ]
    return write_run(folder, records, [SOLO, f"solo:{PARTNER}", "cool"])


def test_diff_counts_the_pairs_and_names_the_parting_segment(tmp_path):
    report = diff_run(hand_made_run(tmp_path / "run"))
    assert report.against == SOLO  # the run's first model: the lead
    (cool,) = report.comparisons
    assert (cool.counts.n, cool.counts.both_right, cool.counts.mode_only, cool.counts.baseline_only) == (4, 1, 1, 2)
    assert cool.counts.difference == pytest.approx(-25.0)
    by_problem = {item["problem"]: item for item in cool.differing}
    assert set(by_problem) == {5, 6, 8}
    part = by_problem[5]["parting"]
    assert by_problem[5]["right"] == SOLO
    assert (part["segment"], part["segments"], part["decision"], part["winner"]) == (1, 3, "scored", PARTNER)
    assert part["forced"] is True and part["candidates"][LEAD] == " = 5." and part["baseline_text"].startswith(" = 5.")
    part = by_problem[6]["parting"]
    assert by_problem[6]["right"] == "cool" and (part["segment"], part["decision"]) == (1, "vetoed")
    assert by_problem[8]["parting"] == {"note": NOT_RECORDED}


def test_diff_prints_the_table_and_the_differences(tmp_path, capsys):
    folder = hand_made_run(tmp_path / "run")
    assert main(["eval", "diff", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "problems 5-8" in out
    row = next(line.split() for line in out.splitlines() if line.startswith("cool ") and "pts" in line)
    assert row[1:7] == ["4", "1", "0", "1", "2", "-25.0"]
    assert "#5  solo:qwen-coder-0.5b right" in out
    assert "parts at segment 2 of 3 (char 5): scored, forced, won by smollm2-135m" in out
    assert 'candidate qwen-coder-0.5b: " = 5." nll qwen-coder-0.5b 0.10\n' in out
    # How sure the lead was where the partner's candidate parts from its own (engine/guard.py).
    assert 'candidate smollm2-135m: " = 6." nll qwen-coder-0.5b 2.30; lead\'s top-1 - top-2 there 0.042' in out
    assert NOT_RECORDED in out


def test_diff_json_and_another_baseline(tmp_path, capsys):
    folder = hand_made_run(tmp_path / "run")
    assert main(["eval", "diff", str(folder), "--json", "--against", f"solo:{PARTNER}", "--resamples", "500"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["against"] == f"solo:{PARTNER}" and data["bootstrap"] == {"resamples": 500, "seed": 0,
                                                                           "confidence": 95}
    (cool,) = data["comparisons"]
    assert cool["n"] == 1 and cool["both_wrong"] == 1 and cool["interval_95"] == [0.0, 0.0]
    assert [m["mode"] for m in data["modes"]] == [SOLO, f"solo:{PARTNER}", "cool"]


def test_cool_r_that_picked_a_models_own_answer_says_so(tmp_path):
    folder = write_run(tmp_path / "run", [
        record(1, SOLO, "#### 1", True, extracted="1"),
        record(1, "cool+r", "#### 2", False, extracted="2", chosen=PARTNER),
    ], [SOLO, "cool+r"])
    (comparison,) = diff_run(folder).comparisons
    assert comparison.differing[0]["parting"] == {"note": f"cool+r picked {PARTNER}'s own answer, not the fused one"}


def test_a_fused_answer_that_stopped_early_parts_at_its_last_segment(tmp_path):
    folder = write_run(tmp_path / "run", [
        record(1, SOLO, "2 - 1 = 1. #### 1", True, extracted="1"),
        record(1, "cool", "2 - 1", False, extracted="1", segment_log=[
            {"text": "2 -", "winner": LEAD, "decision": "agreed"},
            {"text": " 1", "winner": PARTNER, "decision": "scored"}], stop_reason="max_tokens"),
    ], [SOLO, "cool"])
    part = diff_run(folder).comparisons[0].differing[0]["parting"]
    assert part["segment"] == 1 and "ended (max_tokens) where the baseline went on" in part["note"]


@pytest.mark.parametrize("setup, argv, message", [
    ("none", [], "is not a folder"),
    ("empty", [], "has no answers.jsonl: not a `coolfusion eval` run folder"),
    ("run", ["--against", "solo:nobody"], "--against solo:nobody: this run has no such mode"),
    ("run", ["--resamples", "0"], "--resamples must be at least 1"),
    # Issue 29 point 13: a numpy ValueError, an 8 GB allocation, an AttributeError.
    ("run", ["--seed", "-1"], "--seed must be between 0 and 4294967295"),
    ("run", ["--resamples", "1000000000"], "--resamples must be at most 1,000,000"),
    ("list", [], "results.json holds a JSON list, not an eval summary"),
])
def test_diff_usage_errors_are_one_line_exit_2(tmp_path, capsys, setup, argv, message):
    folder = tmp_path / "run"
    if setup == "empty":
        folder.mkdir()
    elif setup in ("run", "list"):
        hand_made_run(folder)
    if setup == "list":
        (folder / "results.json").write_text("[1, 2]", encoding="utf-8")
    assert main(["eval", "diff", str(folder), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_diff_pairs_against_the_recorded_lead_and_old_runs_fall_back_to_the_first_model(tmp_path):
    # Issue 29 point 10: the engine's lead (lead = true, weight, size) need not be listed first.
    folder = hand_made_run(tmp_path / "run")
    assert diff_run(folder).against == SOLO  # an old run: no lead recorded, the first model
    results = folder / "results.json"
    header = json.loads(results.read_text(encoding="utf-8"))
    results.write_text(json.dumps({**header, "lead": PARTNER}), encoding="utf-8")
    assert diff_run(folder).against == f"solo:{PARTNER}"
    # Without results.json, the answers' own record of the lead decides.
    results.unlink()
    answers = folder / "answers.jsonl"
    lines = [json.loads(line) for line in answers.read_text(encoding="utf-8").split("\n") if line]
    answers.write_text("".join(json.dumps({**line, "lead": PARTNER}) + "\n" for line in lines), encoding="utf-8")
    assert diff_run(folder).against == f"solo:{PARTNER}"


def test_diff_leaves_a_half_written_last_line_alone(tmp_path, capsys):
    """A run still writing: diff reads the whole lines and does not touch the file."""
    folder = hand_made_run(tmp_path / "run")
    answers = folder / "answers.jsonl"
    answers.write_bytes(answers.read_bytes() + b'{"problem": 9, "mo')
    before = answers.read_bytes()
    assert main(["eval", "diff", str(folder)]) == 0
    assert answers.read_bytes() == before


# --------------------------------------------------------------------------- recording


class SegmentEngine:
    """Plays two SegmentChosen events and the AnswerDone: what eval records from a fused answer."""

    def generate(self, messages, *, mode=None, **kwargs):
        yield SegmentChosen(0, "So 2", LEAD, (LEAD, PARTNER), {LEAD: Candidate(LEAD, "So 2", False, 2),
                                                                 PARTNER: Candidate(PARTNER, "So 2", False, 2)},
                            {}, "agreed", False, 0.1)
        yield SegmentChosen(1, " #### 2", PARTNER, (PARTNER,),
                            {LEAD: Candidate(LEAD, " #### 3", True, 3), PARTNER: Candidate(PARTNER, " #### 2", True, 3)},
                            {LEAD: {LEAD: 0.12345, PARTNER: 0.5}}, "scored", True, 0.1, forced=True)
        yield AnswerDone("So 2 #### 2", "eos", GenerationStats(mode=mode, segments=2))

    def member(self, name):
        class Model:
            decoded_tokens = 0
        class Member:
            model = Model()
        return Member()


def test_a_fused_answer_records_each_segment_compactly_and_a_solo_one_none():
    settings = EvalSettings(modes=("cool", SOLO), models=(LEAD,))
    problem = Problem(0, 1, "What is 2?", "2")
    fused = answer_one(SegmentEngine(), problem, "cool", settings)
    assert fused.segment_log == [
        {"text": "So 2", "winner": LEAD, "decision": "agreed"},
        {"text": " #### 2", "winner": PARTNER, "decision": "scored", "forced": True,
         "candidates": {LEAD: " #### 3", PARTNER: " #### 2"}, "scores": {LEAD: {LEAD: 0.123, PARTNER: 0.5}}},
    ]
    assert answer_one(SegmentEngine(), problem, SOLO, settings).segment_log is None


# --------------------------------------------------------------------------- the real models


@pytest.mark.models
def test_eval_then_diff_on_the_real_models(tmp_path):
    out = tmp_path / "run"
    done = subprocess.run(eval_two_real_problems(out, f"{SOLO},cool,adaptive", 40),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in (out / "answers.jsonl").read_text(encoding="utf-8").split("\n") if line]
    for answer in answers:
        if answer["mode"] == SOLO:
            assert answer["segment_log"] is None
            continue
        log = answer["segment_log"]
        assert len(log) == answer["segments"] and "".join(s["text"] for s in log) == answer["text"]
        assert {s["decision"] for s in log} <= {"agreed", "sure", "number", "vetoed", "scored", "confident", "unlooped"}
        assert all(s["winner"] in (LEAD, PARTNER) for s in log)
    diff = subprocess.run([sys.executable, "-m", "coolfusion_local", "eval", "diff", str(out), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert diff.returncode == 0, diff.stderr
    data = json.loads(diff.stdout)
    assert data["against"] == SOLO and [c["mode"] for c in data["comparisons"]] == ["cool", "adaptive"]
    for comparison in data["comparisons"]:
        assert comparison["n"] == 2
        assert len(comparison["differing"]) == comparison["mode_only_right"] + comparison["against_only_right"]
        for item in comparison["differing"]:
            assert "segment" in item["parting"] or "note" in item["parting"]
    text = subprocess.run([sys.executable, "-m", "coolfusion_local", "eval", "diff", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert text.returncode == 0 and f"paired against {SOLO}" in text.stdout
