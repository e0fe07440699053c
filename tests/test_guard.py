"""The lead-sure guard (engine/guard.py): where a partner's segment may win at all."""

from __future__ import annotations

import numpy as np
import pytest

from coolfusion_local.engine.events import Message
from coolfusion_local.engine.guard import (
    common_prefix, parting_point, parting_token, parts_in_number, token_ends, top_two_margin,
)
from coolfusion_local.engine.scoring import ScorePolicy
from helpers import answer_events

LEAD, PARTNER = "qwen-coder-0.5b", "smollm2-135m"
PROMPTS = [
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?",
    "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. "
    "How much did she earn? Think step by step.",
    "Explain in three sentences why the sky is blue.",
]
GUARD_OFF = ScorePolicy(sure_margin=1.0, keep_numbers=False)


def test_top_two_margin_is_the_difference_of_the_two_likeliest_probabilities():
    rng = np.random.default_rng(0)
    for scale in (0.1, 3.0, 40.0):
        row = (rng.standard_normal(5000) * scale).astype(np.float32)
        p = np.exp(row.astype(np.float64) - row.max())
        p /= p.sum()
        first, second = np.sort(p)[-2:][::-1]
        assert top_two_margin(row) == pytest.approx(first - second, abs=1e-6)
    assert top_two_margin(np.array([2.0, 2.0, -1.0], dtype=np.float32)) == pytest.approx(0.0)


@pytest.mark.parametrize(("lead", "pieces", "other", "index"), [
    (b" **Identify", [b" **", b"Identify"], b" First,", 0),  # part at once
    (b" 12", [b" 1", b"2"], b" 15", 1),  # part inside the second token
    (b" the", [b" the"], b" the,", 1),  # the lead's whole text is a prefix: they part after it
    (b" cat", [b" cat"], b" cat", 1),  # same text (one ends the answer, one does not)
])
def test_parting_token_is_the_lead_token_where_the_texts_first_differ(lead, pieces, other, index):
    assert b"".join(pieces) == lead
    assert parting_token(lead, token_ends(pieces), other) == index
    assert common_prefix(lead, other) <= len(lead)


@pytest.mark.parametrize(("before", "lead", "other", "inside"), [
    (b"is", b" 12", b" 15", True),  # part after " 1"
    (b"is", b" 12", b" twelve", True),  # the lead's goes on with a digit
    (b"is", b" twelve", b" 12", True),  # the partner's does
    (b"3", b".", b",", True),  # right after a digit: "3." vs "3,"
    (b"so", b" First,", b" **Identify", False),
    (b"", b"The", b"A", False),
])
def test_parts_in_number(before, lead, other, inside):
    assert parts_in_number(before, lead, other) is inside


@pytest.mark.parametrize(("before", "lead", "other"), [
    ("は", "３", "４"),  # fullwidth digits
    ("= ", "٣", "٤"),  # Arabic-Indic digits: they share their first byte
    ("共", "三", "四"),  # CJK numerals
    ("", "½", "¼"),  # vulgar fractions
    ("x", "²", "³"),  # superscripts
    ("is ", "-2", "−2"),  # hyphen-minus vs U+2212 minus, each before a digit
    ("is ", " ٣", " three"),  # the lead's text goes on with an Arabic-Indic digit
])
def test_parts_in_number_knows_every_unicode_number(before, lead, other):
    # Issue 29 point 6: the rule tested ASCII bytes only.
    assert parts_in_number(before.encode(), lead.encode(), other.encode())


@pytest.mark.parametrize(("before", "lead", "other"), [
    ("The answer is 42", "\n", " pears"),  # after a number, not inside one
    ("is 42", " apples", " pears"),
    ("is ４２", "。", " pears"),
])
def test_parting_after_a_number_is_not_a_number_parting(before, lead, other):
    assert not parts_in_number(before.encode(), lead.encode(), other.encode())


def test_the_parting_point_is_a_character_boundary():
    lead, other = "٣".encode(), "٤".encode()
    assert common_prefix(lead, other) == 1 and parting_point(lead, other) == 0
    pieces = [lead[:1], lead[1:]]  # a byte-level tokenizer may split the character
    assert parting_token(lead, token_ends(pieces), other) == 0


def test_the_policy_label_names_the_guard_so_eval_runs_record_it():
    assert "sure_margin=0.15 keep_numbers=true" in ScorePolicy().label
    assert ScorePolicy(sure_margin=0.25).lead_is_sure(0.25) and not ScorePolicy(sure_margin=0.25).lead_is_sure(0.2)
    assert not ScorePolicy(sure_margin=1.0).lead_is_sure(0.9999)  # 1 turns the guard off


def _answer(members, prompt, **settings):
    answer = answer_events(members, [Message("user", prompt)], fresh=True, **settings)
    return answer.segments, answer.done


@pytest.mark.models
def test_with_sure_margin_zero_the_fused_answer_is_the_lead_alone_token_for_token(offline_members):
    members = offline_members(LEAD, PARTNER)
    for prompt in PROMPTS:
        _, solo = _answer(members[:1], prompt, max_tokens=80, mode="solo")
        for mode in ("cool", "adaptive"):
            segments, fused = _answer(members, prompt, max_tokens=80, mode=mode, policy=ScorePolicy(sure_margin=0.0))
            assert fused.text == solo.text, (mode, prompt)
            assert all(s.winner == LEAD or LEAD in s.proposers for s in segments)
            assert {s.decision for s in segments} <= {"agreed", "sure", "number", "confident"}


@pytest.mark.models
def test_partners_win_only_where_the_lead_hesitates_and_never_inside_a_number(offline_members):
    members = offline_members(LEAD, PARTNER)
    guarded = off = 0
    for prompt in PROMPTS[:2]:
        segments, _ = _answer(members, prompt, max_tokens=120, mode="cool")
        for segment in segments:
            if segment.decision in ("sure", "number"):
                guarded += 1
                assert segment.winner == LEAD and set(segment.lead_margins) == {PARTNER}
                if segment.decision == "sure":
                    assert segment.lead_margins[PARTNER] >= 0.15
            if segment.winner != LEAD and LEAD not in segment.proposers:
                assert segment.lead_margins[PARTNER] < 0.15
                ahead = "".join(s.text for s in segments[: segment.index])
                assert not parts_in_number(ahead[-1:].encode(), segment.candidates[LEAD].text.encode(),
                                           segment.text.encode())
        segments, _ = _answer(members, prompt, max_tokens=120, mode="cool", policy=GUARD_OFF)
        assert not {s.decision for s in segments} & {"sure", "number"}
        off += sum(s.winner != LEAD and LEAD not in s.proposers for s in segments)
    # The guard had work to do: without it the partner wins rounds the lead was sure of.
    assert guarded > 0 and off > 0


@pytest.mark.models
def test_adaptive_asks_no_partner_while_the_lead_is_sure_and_answers_as_cool_does(offline_members):
    members = offline_members(LEAD, PARTNER)
    partner = members[1].model
    policy = ScorePolicy(confident_nll=0.0)  # the guard's skip alone
    for prompt in PROMPTS[:2]:
        before = partner.decode_calls
        _, cool = _answer(members, prompt, max_tokens=100, mode="cool", policy=policy)
        cool_work, before = partner.decode_calls - before, partner.decode_calls
        segments, adaptive = _answer(members, prompt, max_tokens=100, mode="adaptive", policy=policy)
        unasked = [s for s in segments if set(s.candidates) == {LEAD}]
        assert unasked and all(s.decision == "sure" for s in unasked)
        # The partner was asked where the lead hesitated somewhere, and may still part where it is sure.
        assert all(s.lead_margins for s in segments if s.decision == "sure" and s not in unasked)
        assert partner.decode_calls - before < cool_work / 2  # catching up takes one batch
        # The same rule decides both; only catching up in batches differs (last bits of a logit).
        assert adaptive.text == cool.text


def test_models_toml_sets_the_guard(tmp_path):
    from pathlib import Path

    from coolfusion_local.fusion_engine import load_config

    shipped = (Path(__file__).parent.parent / "models.toml").read_text(encoding="utf-8")
    assert "\n[fusion]\n" in shipped
    path = tmp_path / "models.toml"
    path.write_text(shipped.replace("\n[fusion]\n", "\n[fusion]\nsure_margin = 0.25\nkeep_numbers = false\n"),
                    encoding="utf-8")
    policy = ScorePolicy.from_config(load_config(path).fusion)
    assert (policy.sure_margin, policy.keep_numbers) == (0.25, False)
    assert ScorePolicy.from_config(load_config(None).fusion) == ScorePolicy()  # the shipped defaults
