"""The headroom table (measure/headroom.py) on hand-computed examples."""

from __future__ import annotations

import pytest

from coolfusion_local.measure.headroom import capture, compute, format_capture, format_headroom, recorded_lead

PROBLEMS = range(1, 11)


def _column(right: set[int]) -> dict[int, bool]:
    return {p: p in right for p in PROBLEMS}


@pytest.fixture
def three():
    # A (the lead) right on 1-5, B on 1, 2, 6, 7, C on 8 only; worked out by hand below.
    return compute({"b": _column({1, 2, 6, 7}), "a": _column({1, 2, 3, 4, 5}), "c": _column({8})}, "a")


def test_accuracies_gaps_and_the_oracle(three):
    assert [(m.name, m.accuracy, m.gap) for m in three.members] == [("a", 50.0, 0.0), ("b", 40.0, 10.0),
                                                                     ("c", 10.0, 40.0)]
    assert three.oracle == [1, 2, 3, 4, 5, 6, 7, 8]
    assert (three.oracle_accuracy, three.gain_bound) == (80.0, 30.0)


def test_h_and_r_per_partner(three):
    b, c = three.partners
    assert (b.helps, b.hurts) == ([6, 7], [3, 4, 5])  # a wrong and b right; a right and b wrong
    assert (c.helps, c.hurts) == ([8], [1, 2, 3, 4, 5])
    assert three.reachable() == {6, 7, 8}


def test_focal_diversity_is_the_mean_over_both_focal_models(three):
    ab = three.pair("a", "b")
    # a wrong on {6..10}; b wrong there on {8, 9, 10}: q = 3/5. b wrong on {3, 4, 5, 8, 9, 10}; a on 3 of 6.
    assert (ab.q_second_given_first, ab.q_first_given_second) == (0.6, 0.5)
    assert ab.diversity == pytest.approx(((1 - 0.6) / 1.6 + (1 - 0.5) / 1.5) / 2)
    ac = three.pair("c", "a")
    assert (ac.q_second_given_first, ac.q_first_given_second) == (0.8, 4 / 9)
    assert ac.diversity == pytest.approx((0.2 / 1.8 + (5 / 9) / (13 / 9)) / 2)


def test_a_model_never_wrong_has_no_focal_value():
    h = compute({"a": _column(set(PROBLEMS)), "b": _column({1})}, "a")
    assert h.pairs[0].q_second_given_first is None and h.pairs[0].q_first_given_second == 0.0
    assert h.pairs[0].diversity == 1.0
    assert h.verdict == ("fusing cannot gain over a on these 10 problems: no other member is right where a is "
                         "wrong; b is 90 points weaker (members more than 10 points apart rarely gain)")


def test_the_verdict_of_the_issue_s_example():
    n = 300
    lead_right = set(range(83))
    partner_right = set(range(10)) | {290, 291, 292, 293}
    h = compute({"qwen-coder-0.5b": {p: p in lead_right for p in range(n)},
                 "smollm2-135m": {p: p in partner_right for p in range(n)}}, "qwen-coder-0.5b")
    assert h.verdict == ("fusing can gain at most 1.3 points over qwen-coder-0.5b on these 300 problems "
                         "(H: smollm2-135m right where qwen-coder-0.5b is wrong on 4); smollm2-135m is 23 points "
                         "weaker (members more than 10 points apart rarely gain)")
    table = format_headroom(h)
    assert "qwen-coder-0.5b (lead)" in table and "4 (1.3%)" in table and "73 (24.3%)" in table
    assert "oracle (any member right): 29.0% (+1.3 pts over qwen-coder-0.5b)" in table


def test_the_lead_is_the_one_given_not_the_first_listed_and_a_stronger_partner_is_named(three):
    h = compute({"c": _column({8}), "b": _column({1, 2, 6, 7}), "a": _column({1, 2, 3, 4, 5})}, "b")
    assert h.members[0].name == "b"
    assert h.verdict.endswith("; a alone is 10.0 points above the lead here (`coolfusion models lead a` makes it lead)")
    assert three.verdict == ("fusing can gain at most 30.0 points over a on these 10 problems "
                             "(H: some partner right where a is wrong on 3); c is 40 points weaker")


def test_only_problems_every_member_answered_count():
    h = compute({"a": {1: True, 2: False, 3: False}, "b": {2: True, 3: False}}, "a")
    assert h.problems == [2, 3] and h.members[0].accuracy == 0.0 and h.partners[0].helps == [2]


def test_what_a_fused_mode_captured(three):
    fused = _column({2, 3, 4, 5, 6, 8, 9})
    captured = capture(three, "cool", fused, _column({1, 2, 3, 4, 5}))
    assert (captured.reachable, captured.won, captured.lost, captured.beyond) == ([6, 7, 8], [6, 8], [1], [9])
    assert captured.share == pytest.approx(200 / 3)
    text = format_capture([captured], "a")
    assert "2 of 3" in text and "67%" in text and "#6, #8" in text
    assert captured.as_dict()["captured_share"] == 66.7


def test_the_json_form(three):
    data = three.as_dict()
    assert data["lead"] == "a" and data["oracle"] == {"correct": 8, "accuracy": 80.0, "over_lead": 30.0}
    assert data["partners"][0] == {"name": "b", "H": 2, "H_share": 20.0, "R": 3, "R_share": 30.0,
                                   "H_problems": [6, 7], "R_problems": [3, 4, 5]}
    assert data["pairs"][0]["q"] == {"b|a": 0.6, "a|b": 0.5}


@pytest.mark.parametrize("header, lead", [
    ({"lead": "qwen"}, "qwen"), ({"lead": "solo:qwen"}, "qwen"), ({"lead": {"name": "qwen"}}, "qwen"),
    ({"headroom": {"lead": "qwen"}}, "qwen"), ({"models": ["a", "b"]}, None), ({"headroom": [1]}, None),
])
def test_the_recorded_lead_in_any_of_its_forms(header, lead):
    assert recorded_lead(header) == lead


# --- eval diff: which of the H problems each fused mode won ----------------------------------------

def _diff_run(folder, lead_recorded: bool):
    import json

    from test_eval_diff import LEAD, PARTNER, record, write_run

    # The lead right on 1, 2; the partner right on 2, 3, 4 (H = 3, 4; R = 1); cool wins 3, loses 1;
    # adaptive wins nothing and loses nothing.
    right = {f"solo:{LEAD}": {1, 2}, f"solo:{PARTNER}": {2, 3, 4}, "cool": {2, 3}, "adaptive": {1, 2}}
    records = [record(p, mode, f"#### {p}", p in won, extracted=str(p)) for p in (1, 2, 3, 4, 5)
               for mode, won in right.items()]
    folder = write_run(folder, records, list(right))
    if lead_recorded:  # as a run records its lead: here the partner, against the listed order
        results = folder / "results.json"
        results.write_text(json.dumps({**json.loads(results.read_text()), "lead": PARTNER}))
    return folder


def test_eval_diff_shows_which_h_problems_each_fused_mode_won(tmp_path, capsys):
    import json

    from coolfusion_local.cli import main

    folder = _diff_run(tmp_path / "run", lead_recorded=False)
    assert main(["eval", "diff", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "headroom over 5 problems every member answered alone (lead: first listed (the run recorded no lead): " \
           "qwen-coder-0.5b)" in out
    row = next(line.split() for line in out.splitlines() if line.startswith("cool ") and "of" in line)
    assert row == ["cool", "1", "of", "2", "50%", "1", "0", "#3"]
    row = next(line.split() for line in out.splitlines() if line.startswith("adaptive ") and "of" in line)
    assert row == ["adaptive", "0", "of", "2", "0%", "0", "0", "-"]
    assert main(["eval", "diff", str(folder), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["headroom"]["partners"][0]["H_problems"] == [3, 4]
    assert data["headroom_captured"][0] == {"mode": "cool", "H": 2, "won": [3], "lost": [1], "beyond_oracle": [],
                                            "captured_share": 50.0}


def test_eval_diff_takes_the_lead_the_run_recorded(tmp_path, capsys):
    import json

    from coolfusion_local.cli import main

    folder = _diff_run(tmp_path / "run", lead_recorded=True)
    assert main(["eval", "diff", str(folder), "--json"]) == 0
    headroom = json.loads(capsys.readouterr().out)["headroom"]
    assert headroom["lead"] == "smollm2-135m" and headroom["lead_from"] == "recorded"
    assert headroom["partners"][0]["H_problems"] == [1]


def test_a_run_still_writing_takes_the_against_model_as_its_lead(tmp_path, capsys):
    import json

    from coolfusion_local.cli import main

    folder = _diff_run(tmp_path / "run", lead_recorded=False)
    (folder / "results.json").unlink()  # written only when a run ends
    assert main(["eval", "diff", str(folder), "--json", "--against", "solo:qwen-coder-0.5b"]) == 0
    headroom = json.loads(capsys.readouterr().out)["headroom"]
    assert headroom["lead"] == "qwen-coder-0.5b" and headroom["lead_from"] == "the --against model (the run names none)"
