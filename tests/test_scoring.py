"""The rerank rule on given scores (pure: no model needed)."""

from __future__ import annotations

from dataclasses import dataclass

from coolfusion_local.engine.scoring import ScorePolicy


@dataclass
class FakeMember:  # only the fields the policy reads
    name: str
    weight: float = 1.0


STRONG, WEAK = FakeMember("strong"), FakeMember("weak")
A, B = (b" 72", False), (b" 96", False)  # A: the strong model's candidate, B: the weak one's


def scores(strong_a, strong_b, weak_a, weak_b):
    return {"strong": {A: strong_a, B: strong_b}, "weak": {A: weak_a, B: weak_b}}


def test_mean_ppl_lets_a_confident_weak_model_win():
    # The weak model is sure of its own candidate and finds the strong one's unlikely.
    table = scores(strong_a=0.1, strong_b=1.1, weak_a=1.3, weak_b=0.3)
    assert ScorePolicy(rule="mean-ppl").choose([STRONG, WEAK], [A, B], table) == B


def test_lead_veto_keeps_the_lead_where_it_is_sure():
    table = scores(strong_a=0.1, strong_b=1.1, weak_a=1.3, weak_b=0.3)
    policy = ScorePolicy(rule="lead-veto", lead_margin=0.5)
    assert policy.choose([STRONG, WEAK], [A, B], table, STRONG, A) == A


def test_lead_veto_lets_the_partner_break_near_ties():
    table = scores(strong_a=0.6, strong_b=0.8, weak_a=2.0, weak_b=0.2)
    policy = ScorePolicy(rule="lead-veto", lead_margin=0.5)
    assert policy.choose([STRONG, WEAK], [A, B], table, STRONG, A) == B


def test_weights_make_the_average_a_weighted_one():
    table = scores(strong_a=0.2, strong_b=1.0, weak_a=1.0, weak_b=0.1)
    even = ScorePolicy(rule="mean-ppl").choose([STRONG, WEAK], [A, B], table)
    heavy = ScorePolicy(rule="mean-ppl").choose([FakeMember("strong", 4.0), WEAK], [A, B], table)
    assert (even, heavy) == (B, A)


def test_ties_keep_the_first_proposal():
    table = scores(0.5, 0.5, 0.5, 0.5)
    assert ScorePolicy(rule="mean-ppl").choose([STRONG, WEAK], [A, B], table) == A


def test_default_margin_lets_a_partner_win_only_where_the_lead_agrees():
    policy = ScorePolicy()  # lead-veto, margin 0
    partner_better_for_lead = scores(strong_a=0.6, strong_b=0.5, weak_a=2.0, weak_b=0.2)
    partner_worse_for_lead = scores(strong_a=0.5, strong_b=0.6, weak_a=2.0, weak_b=0.2)
    assert policy.choose([STRONG, WEAK], [A, B], partner_better_for_lead, STRONG, A) == B
    assert policy.choose([STRONG, WEAK], [A, B], partner_worse_for_lead, STRONG, A) == A


def test_lead_veto_weighs_a_segment_by_its_probability_not_per_token():
    # The lead's own " a" (one token, NLL 0.42) against a partner's " 1/4" (four
    # tokens, 0.32 each for the lead: 1.28 in all, less than half as likely).
    own, partner = (b" a", False), (b" 1/4", False)
    mean_nll = {"strong": {own: 0.42, partner: 0.32}, "weak": {own: 1.85, partner: 0.18}}
    totals = {own: 0.42, partner: 1.28}
    policy = ScorePolicy()
    assert policy.choose([STRONG, WEAK], [own, partner], mean_nll, STRONG, own, totals) == own
    # Whole answers (no totals given) are compared per token.
    assert policy.choose([STRONG, WEAK], [own, partner], mean_nll, STRONG, own) == partner


def test_a_first_token_less_likely_than_the_whole_own_segment_is_vetoed_for_sure():
    policy = ScorePolicy()
    assert policy.vetoed_for_sure(lead_total_at_least=1.2, lead_own_total=0.9)
    assert not policy.vetoed_for_sure(lead_total_at_least=0.8, lead_own_total=0.9)
    assert not ScorePolicy(lead_margin=0.5).vetoed_for_sure(lead_total_at_least=1.2, lead_own_total=0.9)
    assert not ScorePolicy(rule="mean-ppl").vetoed_for_sure(lead_total_at_least=9.0, lead_own_total=0.1)


def test_a_vetoed_best_candidate_falls_back_to_the_best_one_the_lead_lets_through():
    # Issue 29 point 5, its numbers: the lead's NLLs L 1.0, B 1.5, C 0.9; one partner
    # favours B, the other B and C. Joint perplexities: L 14.30, B 2.16, C 2.30.
    lead, first, second = FakeMember("lead"), FakeMember("first"), FakeMember("second")
    own, b, c = (b" 12", False), (b" 15", False), (b" 13", False)
    table = {
        "lead": {own: 1.0, b: 1.5, c: 0.9},
        "first": {own: 3.0, b: 0.0, c: 1.2355},
        "second": {own: 3.0, b: 0.0, c: 0.0},
    }
    policy = ScorePolicy()  # lead-veto, margin 0
    members = [lead, first, second]
    joint = {key: round(policy.combined(members, key, table), 2) for key in (own, b, c)}
    assert joint == {own: 14.30, b: 2.16, c: 2.30}
    # B is the best but the lead vetoes it (1.5 > 1.0); C passes (0.9 <= 1.0) and wins.
    assert policy.choose(members, [own, b, c], table, lead, own, table["lead"]) == c
    # Where every other candidate is vetoed, the lead's own still wins.
    worse = {**table, "lead": {own: 1.0, b: 1.5, c: 1.1}}
    assert policy.choose(members, [own, b, c], worse, lead, own, worse["lead"]) == own
