"""llama.cpp's sampler chain on logits rows (TokenSampler): no model needed, the real samplers run."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from coolfusion_local.engine.sampling import GREEDY, Sampling
from coolfusion_local.engine.token_sampler import TokenSampler

VOCAB = 1000


def row(peaks: dict[int, float]) -> np.ndarray:
    logits = np.full(VOCAB, -10.0, dtype=np.float32)
    for token, logit in peaks.items():
        logits[token] = logit
    return logits


def draws(sampling: Sampling, logits: np.ndarray, count: int = 200, history=()) -> list[int]:
    sampler = TokenSampler(sampling, VOCAB)
    try:
        return [sampler.pick(logits, list(history)) for _ in range(count)]
    finally:
        sampler.close()


def test_greedy_and_top_k_1_pick_the_argmax():
    logits = row({7: 3.0, 8: 2.9, 9: 1.0})
    assert set(draws(GREEDY, logits, 5)) == {7}
    assert set(draws(Sampling(temperature=1.5, top_k=1, seed=1), logits, 50)) == {7}


def test_a_seed_repeats_the_draws_and_another_seed_does_not():
    flat = row({token: 1.0 for token in range(20)})
    sampling = Sampling(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=11)
    first, again = draws(sampling, flat), draws(sampling, flat)
    other = draws(replace(sampling, seed=12), flat)
    assert first == again and first != other
    assert set(first) <= set(range(20)) and len(set(first)) > 10


def test_min_p_and_top_k_cut_the_tail():
    logits = row({1: 5.0, 2: 4.5, 3: 1.0, 4: 0.5})  # p(3)/p(1) = e^-4 < 0.05
    picked = draws(Sampling(temperature=1.0, top_k=40, top_p=1.0, min_p=0.05, seed=3), logits, 400)
    assert set(picked) == {1, 2}
    picked = draws(Sampling(temperature=5.0, top_k=2, top_p=1.0, min_p=0.0, seed=3), logits, 400)
    assert set(picked) == {1, 2}


def test_the_repeat_penalty_sees_the_answer_as_it_stands_now():
    logits = row({5: 2.0, 6: 1.9})
    sampler = TokenSampler(Sampling(temperature=0.8, top_k=1, repeat_penalty=1.5, repeat_last_n=4, seed=1), VOCAB)
    try:
        assert sampler.pick(logits, [1, 2, 3]) == 5
        assert sampler.pick(logits, [1, 2, 3, 5]) == 6  # 5 was just written: penalised
        assert sampler.pick(logits, [1, 2]) == 5  # the answer was rolled back: 5 is gone
        assert sampler.pick(logits, [5, 1, 2, 3, 4]) == 5  # 5 is older than the last 4 tokens
    finally:
        sampler.close()
