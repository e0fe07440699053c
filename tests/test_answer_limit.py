"""`max_tokens` is a cap, in every mode: the last segment is cut at the limit (issue 18.2).

The limit counts the lead model's answer tokens, as `GenerationStats.answer_tokens`
(and the API's `usage.completion_tokens`) always have. A segment is up to 16
proposer tokens, so without the cut `max_tokens: 1` gave a word or more.
Real models: where the cut falls depends on their tokenizers.
"""

from __future__ import annotations

import pytest

from coolfusion_local.engine.events import AnswerDone, Message, SegmentChosen
from coolfusion_local.engine.fusion import lead_member, prompt_tokens
from helpers import answer_events

pytestmark = pytest.mark.models

QUESTION = [Message("user", "Explain in two sentences why the sky is blue.")]
# Qwen writes digits one token each and no word ends: 16-token segments, forced.
DIGITS = [Message("user", "Write the first 50 decimal digits of pi as one number with no spaces.")]
PAIR = ("qwen-coder-0.5b", "smollm2-135m")


def answer(members, messages, **settings) -> tuple[list[SegmentChosen], AnswerDone]:
    answered = answer_events(members, messages, **settings)
    return answered.segments, answered.done


def held_text(member) -> str:
    return member.model.detokenize(member.model.answer_tokens).decode("utf-8")  # strict: no half character


@pytest.mark.parametrize("mode", ["cool", "adaptive", "solo"])
def test_max_tokens_caps_the_lead_s_answer_tokens(offline_members, mode):
    members = offline_members(*PAIR) if mode != "solo" else offline_members(PAIR[0])
    lead = lead_member(members)
    _, uncapped = answer(members, DIGITS, mode=mode, max_tokens=48)
    for limit in (1, 2, 3, 5, 8):
        segments, done = answer(members, DIGITS, mode=mode, max_tokens=limit)
        assert done.stop_reason == "max_tokens", (limit, done)
        assert done.stats.answer_tokens == len(lead.model.answer_tokens) <= limit, (limit, done.text)
        assert done.text and uncapped.text.startswith(done.text), (limit, done.text, uncapped.text)
        assert "".join(s.text for s in segments) == done.text
        assert not segments[-1].ends_answer
        assert held_text(lead) == done.text
        if mode == "cool":  # every model took part in every round: each holds the same text
            assert all(held_text(m) == done.text for m in members), limit


def test_a_limit_of_one_token_gives_one_token_not_a_word(offline_members):
    members = offline_members(*PAIR)
    lead = lead_member(members)
    _, done = answer(members, [Message("user", "Write the word 'internationalisation' and nothing else.")],
                     max_tokens=1)
    assert done.stats.answer_tokens == 1
    assert lead.model.tokenize(done.text.encode()) == lead.model.answer_tokens  # exactly the lead's one token


def test_a_cut_answer_can_be_continued_by_every_model(offline_members):
    members = offline_members(*PAIR)
    _, cut = answer(members, QUESTION, max_tokens=3)
    follow_up = [*QUESTION, Message("assistant", cut.text), Message("user", "Now in one word.")]
    _, done = answer(members, follow_up, max_tokens=6)
    assert done.stop_reason in ("eos", "max_tokens") and done.error is None
    assert all(held_text(m) == done.text for m in members)


@pytest.mark.parametrize("prompt", ["用中文写一句关于猫的话。", "Reply with three emoji about the sun, nothing else."])
def test_the_cut_never_splits_a_character(offline_members, prompt):
    # SmolLM2 leads here: it writes an emoji as three byte tokens.
    members = offline_members("smollm2-135m", "qwen-coder-0.5b")
    lead = lead_member(members)
    assert lead.name == "smollm2-135m"
    messages = [Message("user", prompt)]
    _, uncapped = answer(members, messages, max_tokens=32)
    backed_off = []
    for limit in range(1, 9):
        _, done = answer(members, messages, max_tokens=limit)
        assert "\ufffd" not in done.text, limit
        assert uncapped.text.startswith(done.text), (limit, done.text)
        assert done.stats.answer_tokens <= limit
        assert all(held_text(m) == done.text for m in members), limit  # strict UTF-8 in every model
        if done.stop_reason == "max_tokens" and done.stats.answer_tokens < limit:
            backed_off.append(limit)  # the token at the limit ended inside a character: left out
    if "emoji" in prompt:
        assert backed_off  # e.g. limit 1: not one whole emoji fits, the answer is empty


def test_prompt_tokens_count_what_the_lead_read_not_the_messages_left_out(offline_members):
    members = offline_members("smollm2-135m", "qwen-coder-0.5b")
    lead = lead_member(members)
    history = []
    for _ in range(3):
        history += [Message("user", "word " * 700), Message("assistant", "ok")]
    history.append(Message("user", "Say hi."))
    _, done = answer(members, history, max_tokens=2)
    assert done.stats.prompt_tokens <= lead.model.n_ctx < len(prompt_tokens(lead, history))
    assert done.stats.prompt_tokens == lead.model.committed_tokens - len(lead.model.answer_tokens)
