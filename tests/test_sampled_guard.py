"""The lead-sure guard under sampling (issue 29 point 4): the lead is judged by the token it drew.

The guard's margin was top-1 minus top-2 of the raw row, but chat and
`generate` sample: a lead can be "sure" by its raw row and still draw another
token. Then a partner proposing the lead's own argmax was blocked as "sure",
and adaptive mode did not ask the partners at all.
"""

from __future__ import annotations

import numpy as np
import pytest

from coolfusion_local.engine.events import GenerationStats, Message
from coolfusion_local.engine.fusion import _FusionRun, _Round, prompt_tokens
from coolfusion_local.engine.modes import answer_settings
from coolfusion_local.engine.guard import top_two_margin
from coolfusion_local.engine.sampling import Sampling
from coolfusion_local.engine.scoring import ScorePolicy
from coolfusion_local.engine.token_sampler import TokenSampler

LEAD, PARTNER = "qwen-coder-0.5b", "smollm2-135m"
CHAT_LIKE = dict(temperature=0.8, top_k=40, top_p=0.95, min_p=0.05)


def test_the_margin_is_the_drawn_tokens_in_the_distribution_drawn_from():
    # The row: raw margin 0.705 (sure), yet at temperature 0.8 another token 11.7% of the time.
    logits = np.array([3.0, 1.0, 0.6], dtype=np.float32)
    assert top_two_margin(logits) == pytest.approx(0.705, abs=1e-3)
    scaled = np.exp(logits / 0.8) / np.exp(logits / 0.8).sum()  # top-p 0.95 and min-p 0.05 keep all three
    sampler = TokenSampler(Sampling(**CHAT_LIKE, seed=5), 3)
    try:
        assert sampler.margin_after(logits, []) == pytest.approx(scaled[0] - scaled[1], abs=1e-5)
        margins = {}
        picks = []
        for _ in range(3000):
            token = sampler.pick(logits, [])
            picks.append(token)
            margins.setdefault(token, sampler.last_margin)
    finally:
        sampler.close()
    assert 0.09 < np.mean(np.array(picks) != 0) < 0.145  # 11.7% expected
    policy = ScorePolicy()
    assert margins[0] == pytest.approx(scaled[0] - scaled[1], abs=1e-5) and policy.lead_is_sure(margins[0])
    for other in (1, 2):  # drawn against the argmax: unsure, however sure the raw row was
        assert margins[other] == pytest.approx(scaled[other] - scaled[0], abs=1e-5)
        assert not policy.lead_is_sure(margins[other])


def test_greedy_keeps_the_raw_rows_margin():
    logits = np.array([3.0, 1.0, 0.6], dtype=np.float32)
    sampler = TokenSampler(Sampling(), 3)
    try:
        assert sampler.pick(logits, []) == 0 and sampler.margin_after(logits, []) == pytest.approx(0.705, abs=1e-3)
    finally:
        sampler.close()


@pytest.mark.models
def test_a_lead_that_drew_against_its_argmax_lets_the_partner_propose_that_argmax(offline_members):
    members = offline_members(LEAD, PARTNER)
    for member in members:
        member.model.forget()
    messages = [Message("user", "Write a short story about a fox who finds a lantern in the woods.")]
    settings = answer_settings("adaptive", max_tokens=200,
                              sampling=Sampling(temperature=1.2, top_k=40, top_p=0.95, min_p=0.05, seed=7),
                              policy=ScorePolicy(confident_nll=0.0, keep_numbers=False))
    run = _FusionRun(members, settings, GenerationStats())
    try:
        for member in members:
            member.model.start_answer(prompt_tokens(member, messages))
        lead = run.lead.model
        found = 0
        for _ in range(60):  # rounds of the lead alone, its proposal committed each time
            proposal = run.propose(run.lead, lead.room() - 2)
            if proposal.ends or not proposal.tokens:
                break
            rows = lead._pending_rows  # the raw rows the lead drew from
            for index, token in enumerate(proposal.tokens):
                best = int(rows[index].argmax())
                if token == best or top_two_margin(rows[index]) < settings.policy.sure_margin:
                    continue
                # Sure by its raw row, yet it drew another token: a partner proposing its argmax there.
                pieces = b"".join(lead.piece(t) for t in proposal.tokens[:index])
                partner_key = (pieces + lead.piece(best), False)
                margins = run.lead_margins(proposal)
                assert margins[index] < 0  # the drawn token was not the likeliest of the draw
                assert run.parting(proposal, partner_key).allowed
                assert not run.lead_sure_throughout(proposal)  # adaptive asks the partners
                found += 1
            current = _Round([proposal])
            current.winner_key = proposal.key
            run.commit(current)
            if found >= 2:
                break
        assert found >= 1, "the lead never drew against a raw-sure argmax: the test proved nothing"
    finally:
        run.close()
