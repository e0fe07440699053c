"""Sampling and the loop guard on the real offline models (llama.cpp's own sampler chain)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from coolfusion_local.engine.events import AnswerDone, Message, SegmentChosen
from coolfusion_local.engine.fusion import prompt_tokens
from coolfusion_local.engine.repetition import repeated_run, verbatim_loop
from coolfusion_local.engine.sampling import CHAT, GREEDY, Sampling
from coolfusion_local.engine.token_sampler import TokenSampler
from helpers import answer_events

pytestmark = pytest.mark.models

PAIR = ("qwen-coder-0.5b", "smollm2-135m")
POEM = [Message("user", "Write a short poem about the sea at night.")]
# SmolLM2 alone, greedy, loops on this one (issue 10's compare view).
HAIKU = [Message("user", "Write a haiku about autumn rain, then explain it in one sentence.")]


def answer(members, messages, sampling=GREEDY, **settings) -> tuple[AnswerDone, list[SegmentChosen]]:
    answered = answer_events(members, messages, fresh=True, sampling=sampling, **settings)
    return answered.done, answered.segments


def test_llama_cpp_greedy_sampler_picks_the_argmax_the_engine_always_used(offline_members):
    [member] = offline_members("qwen-coder-0.5b")
    model = member.model
    model.start_answer(prompt_tokens(member, POEM))
    sampler = TokenSampler(replace(GREEDY, repeat_penalty=1.0), model.vocab_size)
    try:
        for _ in range(24):
            row = model._row
            assert sampler.pick(row, model.answer_tokens) == int(row.argmax())
            step = model.step()
            if step.ends:
                break
            model.commit(model.committed_tokens, [step.token])
    finally:
        sampler.close()


@pytest.mark.parametrize("mode, names", [("cool", PAIR), ("solo", PAIR[:1])])
def test_top_k_1_through_the_sampler_chain_is_todays_greedy_answer_token_for_token(offline_members, mode, names):
    members = offline_members(*names)
    greedy, _ = answer(members, POEM, max_tokens=48, mode=mode)
    chained, _ = answer(members, POEM, Sampling(temperature=0.8, top_k=1, seed=9), max_tokens=48, mode=mode)
    assert chained.text == greedy.text and chained.stop_reason == greedy.stop_reason
    # Temperature 0 over the chat defaults: plain greedy, their repeat penalty ignored too.
    zero, _ = answer(members, POEM, replace(CHAT, temperature=0.0), max_tokens=48, mode=mode)
    assert zero.text == greedy.text
    assert chained.stats.sampling["seed"] == 9 and greedy.stats.sampling["temperature"] == 0.0


def test_a_seed_makes_a_sampled_fused_answer_reproducible(offline_members):
    members = offline_members(*PAIR)
    first, _ = answer(members, POEM, replace(CHAT, seed=42), max_tokens=40)
    again, _ = answer(members, POEM, replace(CHAT, seed=42), max_tokens=40)
    other, _ = answer(members, POEM, replace(CHAT, seed=43), max_tokens=40)
    greedy, _ = answer(members, POEM, max_tokens=40)
    assert first.text == again.text
    assert other.text != first.text and greedy.text not in (first.text, other.text)


def test_the_repeat_penalty_breaks_a_models_own_loop(offline_members):
    [member] = offline_members("smollm2-135m")
    looping, _ = answer([member], HAIKU, max_tokens=160, mode="solo")
    assert repeated_run(looping.text) is not None, looping.text
    penalised, _ = answer([member], HAIKU, Sampling(temperature=0.8, top_k=1, repeat_penalty=1.5), max_tokens=160,
                          mode="solo")
    assert repeated_run(penalised.text) is None, penalised.text


def test_the_loop_guard_ends_a_looping_answer_with_stop_reason_loop(offline_members):
    [member] = offline_members("smollm2-135m")
    looping, _ = answer([member], HAIKU, max_tokens=160, mode="solo")
    guarded, _ = answer([member], HAIKU, max_tokens=160, mode="solo", loop_guard=True)
    assert guarded.stop_reason == "loop"
    assert looping.text.startswith(guarded.text) and verbatim_loop(guarded.text) is None


def test_the_loop_guard_keeps_a_fused_answer_from_repeating_itself(offline_members):
    members = offline_members(*PAIR)
    # Asked for verbatim repetition, both models comply: the fused text loops.
    asked = [Message("user", "Repeat the sentence 'I will not talk in class.' ten times.")]
    looping, _ = answer(members, asked, max_tokens=120)
    assert repeated_run(looping.text) is not None, looping.text
    guarded, segments = answer(members, asked, max_tokens=120, loop_guard=True)
    assert verbatim_loop(guarded.text) is None, guarded.text
    assert guarded.stop_reason == "loop" or any(s.decision == "unlooped" for s in segments)
