"""End-to-end fusion through real llama.cpp models of three tokenizer families."""

from __future__ import annotations

import threading

import pytest

from coolfusion_local.engine.events import AnswerDone, Message, Notice, SegmentChosen
from coolfusion_local.engine.fusion import generate, prompt_tokens
from coolfusion_local.engine.modes import answer_settings
from coolfusion_local.engine.scoring import ScorePolicy
from helpers import answer_events

pytestmark = pytest.mark.models

NATALIA = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?"
)
PAIRS = [
    ("qwen-coder-0.5b", "smollm2-135m"),
    ("qwen-coder-0.5b", "gemma3-270m"),
    ("smollm2-135m", "gemma3-270m"),
]


def run(members, messages, **settings):
    answer = answer_events(members, messages, **settings)
    return answer.segments, answer.done, answer.events


def assert_every_model_holds_the_shared_text(members, done):
    for member in members:
        held = member.model.detokenize(member.model.answer_tokens).decode("utf-8", errors="replace")
        if done.stop_reason == "stop_string":  # the models hold the stop text too
            assert held.startswith(done.text), member.name
        else:
            assert held == done.text, member.name


@pytest.mark.parametrize("names", PAIRS, ids=["qwen+smollm2", "qwen+gemma", "smollm2+gemma"])
def test_fused_answer_is_consistent_across_families(offline_members, names):
    members = offline_members(*names)
    segments, done, _ = run(members, [Message("user", NATALIA)], max_tokens=48)
    # Gemma 270M is a base model: its plain-text format stops at "\nUser:".
    assert done.stop_reason in ("eos", "max_tokens", "stop_string")
    assert done.text == "".join(s.text for s in segments)
    assert len(segments) >= 2
    # After N segments each model's own token state decodes to exactly the shared text.
    assert_every_model_holds_the_shared_text(members, done)
    for segment in segments:
        assert set(segment.candidates) == set(names)
        assert segment.winner in names and segment.winner in segment.proposers
        if segment.decision == "scored":
            assert set(segment.scores) == set(names)
            distinct = {c.text for c in segment.candidates.values()}
            assert all(len(row) == len({segment.candidates[p].text for p in row}) for row in segment.scores.values())
            assert len(distinct) >= 2
    assert done.stats.segments == len(segments)
    decided = ("agreed", "sure", "number", "vetoed", "scored")
    assert sum(done.stats.decisions.get(k, 0) for k in decided) == len(segments)


def test_the_lead_veto_settles_rounds_unscored_with_the_winner_scoring_would_pick(offline_members, monkeypatch):
    from coolfusion_local.engine.fusion import _FusionRun

    members = offline_members("qwen-coder-0.5b", "smollm2-135m")
    lead = members[0].model
    # Whatever ran before, both runs below start from the same cache: a prompt cached in another
    # batch split differs in the last bits of a logit, and a near-tie round may then flip.
    for member in members:
        member.model.forget()
    # Without the lead-sure guard (guard.py), which would settle most of these rounds first.
    unguarded = ScorePolicy(sure_margin=1.0, keep_numbers=False)
    run(members, [Message("user", NATALIA)], max_tokens=1, policy=unguarded)  # both runs below reuse this prompt
    before = lead.decoded_tokens
    segments, done, _ = run(members, [Message("user", NATALIA)], max_tokens=64, policy=unguarded)
    vetoed = [s for s in segments if s.decision == "vetoed"]
    assert vetoed and all(s.winner == "qwen-coder-0.5b" and not s.scores for s in vetoed)
    assert_every_model_holds_the_shared_text(members, done)

    # The same answer again with every disagreement scored in full.
    monkeypatch.setattr(_FusionRun, "lead_vetoes_all", lambda self, current, lead_proposal, keys: False)
    before = lead.decoded_tokens
    full_segments, full_done, _ = run(members, [Message("user", NATALIA)], max_tokens=64, policy=unguarded)
    assert "vetoed" not in {s.decision for s in full_segments}
    assert [(s.text, s.winner) for s in full_segments] == [(s.text, s.winner) for s in segments]
    assert full_done.text == done.text
    # Scoring in full decodes the vetoed candidates the shortcut never decodes.
    assert sum(s.decision == "scored" for s in full_segments) > sum(s.decision == "scored" for s in segments)


def test_three_families_fused_together(offline_members):
    members = offline_members("qwen-coder-0.5b", "smollm2-135m", "gemma3-270m")
    segments, done, _ = run(members, [Message("user", "Write one sentence about the sea.")], max_tokens=40,
                            policy=ScorePolicy(sure_margin=1.0))  # every disagreement scored by all three
    assert segments and done.text
    assert_every_model_holds_the_shared_text(members, done)
    assert any(s.decision == "scored" and len(s.scores) == 3 for s in segments)


def test_solo_mode_is_plain_greedy_decoding(offline_members):
    member = offline_members("qwen-coder-0.5b")[0]
    messages = [Message("user", "List the planets of the solar system.")]
    segments, done, _ = run([member], messages, max_tokens=40, mode="solo")
    assert {s.decision for s in segments} == {"solo"}
    # Reference: the model alone, one greedy token at a time.
    model = member.model
    model.start_answer(prompt_tokens(member, messages))
    greedy = []
    while len(greedy) < 40:
        step = model.step()
        if step.ends:
            break
        greedy.append(step.token)
        model.commit(model.committed_tokens, [step.token])
    expected = model.detokenize(greedy).decode("utf-8", errors="replace")
    assert done.text == expected


def test_stop_string_ends_the_answer_before_it(offline_members):
    members = offline_members("qwen-coder-0.5b", "smollm2-135m")
    segments, done, _ = run(members, [Message("user", "Count from 1 to 20, one number per line.")],
                            max_tokens=80, stop=["5"])
    assert done.stop_reason == "stop_string"
    assert "5" not in done.text and "4" in done.text


def test_cancel_keeps_the_partial_answer(offline_members):
    members = offline_members("qwen-coder-0.5b", "smollm2-135m")
    cancel = threading.Event()
    seen = []
    for event in generate(members, [Message("user", NATALIA)], answer_settings(max_tokens=200), cancel):
        if isinstance(event, SegmentChosen):
            seen.append(event.text)
            if len(seen) == 3:
                cancel.set()
        elif isinstance(event, AnswerDone):
            done = event
    assert done.stop_reason == "stopped"
    assert done.text == "".join(seen) and len(seen) == 3


def test_model_that_ends_at_once(offline_members):
    members = offline_members("qwen-coder-0.5b", "smollm2-135m")
    messages = [Message("user", "Reply with nothing at all: an empty message.")]
    segments, done, _ = run(members, messages, max_tokens=30)
    assert done.stop_reason in ("eos", "max_tokens")
    assert_every_model_holds_the_shared_text(members, done)


def test_long_conversation_is_trimmed_with_a_notice(offline_members):
    members = offline_members("smollm2-135m", "qwen-coder-0.5b")
    long_turn = "word " * 700
    history = []
    for _ in range(3):
        history += [Message("user", long_turn), Message("assistant", "ok")]
    history.append(Message("user", "Say hi."))
    segments, done, events = run(members, history, max_tokens=8)
    assert any(isinstance(e, Notice) and "left out" in e.message for e in events)
    assert done.stop_reason in ("eos", "max_tokens")


def test_a_message_too_long_for_any_context_is_refused_cleanly(offline_members):
    members = offline_members("smollm2-135m")
    _, done, _ = run(members, [Message("user", "word " * 3000)], max_tokens=8, mode="solo")
    assert done.stop_reason == "context_full" and "n_ctx" in done.error


def test_cjk_emoji_and_code_answers_stay_valid_text(offline_members):
    members = offline_members("qwen-coder-0.5b", "gemma3-270m")
    for prompt in ["用中文写一句关于猫的话。", "Reply with three emoji about the sun.", "Write a Python function that adds two numbers."]:
        segments, done, _ = run(members, [Message("user", prompt)], max_tokens=32)
        assert "\ufffd" not in "".join(s.text for s in segments[:-1])
        assert_every_model_holds_the_shared_text(members, done)


def test_adaptive_mode_skips_the_partner_while_the_lead_is_confident(offline_members):
    from coolfusion_local.engine.scoring import ScorePolicy

    members = offline_members("qwen-coder-0.5b", "smollm2-135m")
    # The lead-sure guard off: it settles most rounds before confidence is asked (all of them
    # with some CPUs' arithmetic), and this is about the confidence rule.
    settings = dict(max_tokens=60, mode="adaptive", policy=ScorePolicy(confident_nll=0.1, sure_margin=1.0))
    segments, done, _ = run(members, [Message("user", NATALIA)], **settings)
    decisions = {s.decision for s in segments}
    assert "confident" in decisions
    for segment in segments:
        if segment.decision == "confident":
            assert set(segment.candidates) == {"qwen-coder-0.5b"}  # the partner was not asked
    # The lead holds the shared text; the partner catches up when it is next asked.
    lead = members[0].model
    assert lead.detokenize(lead.answer_tokens).decode() == done.text
    assert done.text == "".join(s.text for s in segments)


def test_forced_boundary_when_no_word_ends_within_the_bound(offline_members):
    # Qwen writes digits one token each and no space comes: the segment is cut
    # at the bound (16 tokens) and the answer goes on.
    members = offline_members("qwen-coder-0.5b")
    messages = [Message("user", "Write the first 50 decimal digits of pi as one number with no spaces.")]
    segments, done, _ = run(members, messages, max_tokens=48, mode="solo")
    assert done.stats.decisions.get("forced", 0) >= 1
    assert max(c.tokens for s in segments for c in s.candidates.values()) == 16
    assert_every_model_holds_the_shared_text(members, done)
