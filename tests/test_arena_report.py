"""The arena report's numbers on hand-computed examples: Wilson intervals, votes needed,
position bias, Bradley-Terry ratings; and the report's table and JSON as a user sees them."""

from __future__ import annotations

import math

import pytest

from coolfusion_local.arena.comparisons import Answer, Comparison
from coolfusion_local.arena.report import (
    bradley_terry,
    build_report,
    format_report,
    votes_needed,
    wilson,
)


def test_wilson_interval_matches_the_hand_computed_values():
    # 7 of 10, z = 1.95996: centre (0.7 + z²/20) / (1 + z²/10) = 0.64448,
    # half width z·sqrt(0.021 + z²/400) / (1 + z²/10) = 0.24772.
    low, high = wilson(7, 10)
    assert low == pytest.approx(0.39676, abs=1e-4) and high == pytest.approx(0.89220, abs=1e-4)
    # 0 of 5: the lower end is 0, the upper z² / (n + z²) = 3.8415 / 8.8415.
    low, high = wilson(0, 5)
    assert low == 0.0 and high == pytest.approx(3.84146 / 8.84146, abs=1e-5)
    assert wilson(0, 0) == (0.0, 1.0)


def test_votes_needed_is_where_the_interval_first_leaves_an_even_split():
    # Wilson's lower end equals 0.5 where (p - 0.5)² = z²·p(1-p)/n + z⁴/(4n²). For p = 0.7:
    # 0.04·n² - 0.80671·n - 3.68924 = 0, n = 24.009, so 25 votes; for p = 0.6: n = 96.04, so 97.
    assert votes_needed(0.7) == 25 and votes_needed(0.3) == 25  # symmetric
    assert wilson(0.7 * 25, 25)[0] > 0.5 >= wilson(0.7 * 24, 24)[0]
    assert votes_needed(0.6) == 97
    assert votes_needed(0.5) is None


def comparison(pairing: str, a: str, b: str, vote: str | None, state: str = "voted") -> Comparison:
    return Comparison(pairing=pairing, system_a=a, system_b=b, context=[], prompt="q", settings={}, seed=1,
                      answer_a=Answer("x"), answer_b=Answer("y"), state=state, vote=vote)


def test_tally_per_pairing_position_bias_and_pending():
    p = "cool vs solo:lead"
    votes = [
        comparison(p, "cool", "solo:lead", "A"),  # cool wins, A won
        comparison(p, "solo:lead", "cool", "B"),  # cool wins, B won
        comparison(p, "solo:lead", "cool", "A"),  # cool loses, A won
        comparison(p, "cool", "solo:lead", "tie"),
        comparison(p, "cool", "solo:lead", "both_bad"),
        comparison(p, "cool", "solo:lead", None, state="ready"),
        comparison(p, "cool", "solo:lead", None, state="skipped"),
        comparison(p, "cool", "solo:lead", None, state="answering"),
    ]
    report = build_report(votes)
    [tally] = report.pairings
    assert (tally.wins, tally.ties, tally.losses, tally.both_bad, tally.pending, tally.skipped) == (2, 1, 1, 1, 1, 1)
    assert tally.win_rate == pytest.approx(2 / 3)
    assert tally.interval == pytest.approx(wilson(2, 3))
    assert report.unfinished == 1 and report.pending == 1
    assert (report.position.a_wins, report.position.b_wins) == (2, 1)
    assert report.ratings == []  # two systems: the pairing's win rate says it all
    text = format_report(report)
    assert "cool vs solo:lead" in text and "67%" in text and "Wilson" in text
    assert "A won 2 of 3 decisive votes" in text
    assert "1 answered and waiting for a vote" in text and "1 interrupted" in text
    data = report.as_dict()
    assert data["pairings"][0]["interval_95"] == pytest.approx(list(wilson(2, 3)))


def test_bradley_terry_matches_the_maximum_likelihood_by_hand():
    # A beat B 2 of 3, B beat C 2 of 3, A and C never met: the likelihood is highest at
    # p_A / p_B = 2 and p_B / p_C = 2, i.e. 400·log10(2) = 120.4 Elo points between neighbours.
    games = [("A", "B", 1.0), ("A", "B", 1.0), ("A", "B", 0.0), ("B", "C", 1.0), ("B", "C", 1.0), ("B", "C", 0.0)]
    ratings = bradley_terry(games, ["A", "B", "C"], prior=0)
    step = 400 * math.log10(2)
    assert ratings["A"] - ratings["B"] == pytest.approx(step, abs=0.01)
    assert ratings["B"] - ratings["C"] == pytest.approx(step, abs=0.01)
    assert sum(ratings.values()) / 3 == pytest.approx(1000, abs=0.01)
    # A cycle of equal records: everyone equal. A tie is half a win each way.
    cycle = [("A", "B", 1.0), ("B", "C", 1.0), ("C", "A", 1.0)]
    assert all(r == pytest.approx(1000, abs=0.01) for r in bradley_terry(cycle, ["A", "B", "C"], prior=0).values())
    ties = [("A", "B", 0.5)] * 4
    assert bradley_terry(ties, ["A", "B"], prior=0)["A"] == pytest.approx(1000, abs=0.01)


def test_more_than_two_systems_get_a_bradley_terry_table_with_bootstrap_intervals():
    votes = []
    for _ in range(6):
        votes.append(comparison("cool vs solo:lead", "cool", "solo:lead", "A"))
    for _ in range(2):
        votes.append(comparison("cool vs solo:lead", "cool", "solo:lead", "B"))
    for _ in range(3):
        votes.append(comparison("adaptive vs cool", "adaptive", "cool", "tie"))
    report = build_report(votes, bootstrap=200)
    names = [r.system for r in report.ratings]
    assert sorted(names) == ["adaptive", "cool", "solo:lead"]
    for rating in report.ratings:
        assert rating.low <= rating.rating <= rating.high
    assert names[-1] == "solo:lead"  # lost 6 of 8
    assert "Bradley-Terry" in format_report(report)


def test_an_empty_history_says_how_to_start():
    text = format_report(build_report([]))
    assert "No comparisons yet" in text and "F4" in text
