"""Drafting across vocabularies (engine/drafting.py): settings, and greedy output unchanged on real models.

The equality tests compare whole answers with drafting on and off, token for
token, on the offline models; each answer must really have drafted (checks
ran, tokens were accepted), or the comparison would prove nothing. Every
answer starts from an empty cache (`forget`), so both runs read the prompt
the same way.
"""

from __future__ import annotations

import pytest

from coolfusion_local.fusion_engine import load_config
from coolfusion_local.engine.drafting import DEFAULT_MAX_SEGMENTS, DraftSettings
from coolfusion_local.engine.events import Message
from coolfusion_local.engine.fusion import prompt_tokens
from coolfusion_local.engine.sampling import Sampling
from helpers import answer_events
from models_env import Home, run_coolfusion

GOOD_MODEL = '[[models]]\nname = "qwen"\npypi = "qwen2.5-coder-0.5b-instruct"\n'
PAIR = ("qwen-coder-0.5b", "smollm2-135m")
PROMPTS = (
    "A baker makes 24 muffins in the morning and twice as many in the afternoon. He sells 50 of them. "
    "How many muffins are left? Solve it step by step.",
    "Explain in a few sentences why the sky is blue.",
    "Write a Python function that checks whether a string is a palindrome, ignoring case and spaces.",
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?",
)


# --------------------------------------------------------------------------- settings


def test_drafting_is_on_by_default_and_settable(tmp_path):
    toml = tmp_path / "models.toml"
    toml.write_text(GOOD_MODEL)
    fusion = load_config(toml).fusion
    assert (fusion.draft, fusion.draft_max_segments) == ("auto", 2)
    assert fusion.draft_max_segments == DEFAULT_MAX_SEGMENTS  # the engine's default and the config's agree
    toml.write_text(GOOD_MODEL + '[fusion]\ndraft = "off"\ndraft_max_segments = 3\n')
    fusion = load_config(toml).fusion
    assert (fusion.draft, fusion.draft_max_segments) == ("off", 3)


@pytest.mark.parametrize("text, expected", [
    ('[fusion]\ndraft = "sometimes"\n', "draft 'sometimes' is not a drafting mode"),
    ("[fusion]\ndraft_max_segments = 0\n", "draft_max_segments"),
])
def test_a_bad_draft_key_is_one_line_and_exit_2(tmp_path, text, expected):
    home = Home(tmp_path)
    toml = tmp_path / "models.toml"
    toml.write_text(GOOD_MODEL + text)
    result = run_coolfusion(home, "models", "list", "--config", str(toml))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1 and expected in result.stderr, result.stderr


def test_the_chat_shows_the_draft_acceptance_of_an_answer_that_drafted():
    from coolfusion_local.engine.events import GenerationStats
    from coolfusion_local.tui.widgets.message_box import describe_stats

    stats = GenerationStats(segments=12, answer_tokens=20, seconds=2.0, draft_offered=8, draft_accepted=6)
    assert "drafts 75% accepted" in describe_stats(stats.as_dict())
    assert "drafts" not in describe_stats(GenerationStats(segments=12, answer_tokens=20, seconds=2.0).as_dict())
    assert "drafts" not in describe_stats({"segments": 3})  # stats saved before drafting existed


# --------------------------------------------------------------------------- real models


def answer(members, prompt, mode, draft, max_tokens=64, sampling=None):
    for member in members:
        member.draft_records.clear()  # a verdict from an earlier answer would skip drafting
    answered = answer_events(members, [Message("user", prompt)], fresh=True, mode=mode, max_tokens=max_tokens,
                             draft=DraftSettings(draft), loop_guard=True,
                             **({"sampling": sampling} if sampling else {}))
    assert answered.done.stop_reason in ("eos", "max_tokens"), answered.done
    return answered.done, answered.segments


def warm_up(members):
    """Drafting starts once every model's one-token decode has been timed (the first rounds)."""
    answer(members, "Hello", "cool", "off", max_tokens=8)


@pytest.mark.models
@pytest.mark.parametrize("mode", ["cool", "adaptive"])
def test_greedy_answers_are_the_same_token_for_token_with_drafting(offline_members, mode):
    members = offline_members(*PAIR)
    warm_up(members)
    lead = members[0].model
    accepted = 0
    for prompt in PROMPTS:
        plain, plain_segments = answer(members, prompt, mode, "off")
        plain_tokens = list(lead.answer_tokens)
        drafted, drafted_segments = answer(members, prompt, mode, "auto")
        assert lead.answer_tokens == plain_tokens, prompt
        assert drafted.text == plain.text
        assert [(s.text, s.decision, s.winner) for s in drafted_segments] == \
               [(s.text, s.decision, s.winner) for s in plain_segments]
        assert plain.stats.draft_cycles == 0
        accepted += drafted.stats.draft_accepted
        for member in members:  # every model's state reads back as the shared text
            held = member.model.detokenize(member.model.answer_tokens).decode("utf-8", errors="replace")
            assert held == drafted.text or mode == "adaptive", member.name
    assert accepted > 0  # the checks really took tokens from the drafts


@pytest.mark.models
def test_drafting_reads_the_lead_fewer_times_and_reports_it(offline_members):
    members = offline_members(*PAIR)
    warm_up(members)
    plain, _ = answer(members, PROMPTS[0], "cool", "off")
    drafted, _ = answer(members, PROMPTS[0], "cool", "auto")
    stats = drafted.stats.as_dict()  # what `generate --json` prints
    assert stats["draft"]["drafter"] == "smollm2-135m"  # the cheaper one by measured decode time
    assert 0 < stats["draft"]["accepted"] <= stats["draft"]["offered"]
    assert stats["draft"]["acceptance"] == round(stats["draft"]["accepted"] / stats["draft"]["offered"], 3)
    # A check of n tokens is one decode per exact_batch_size() tokens, never more than one per token.
    assert drafted.stats.lead_decodes <= plain.stats.lead_decodes
    if members[0].model.exact_batch_size() > 1:
        assert drafted.stats.lead_decodes < plain.stats.lead_decodes


@pytest.mark.models
def test_exact_batch_size_reproduces_one_token_decodes(offline_members):
    model = offline_members(*PAIR)[0].model
    size = model.exact_batch_size()
    assert 1 <= size <= 8
    # A draft checked in decodes of that size leaves the same rows one-token decodes leave.
    member = offline_members(*PAIR)[0]
    prompt = prompt_tokens(member, [Message("user", PROMPTS[1])])
    model.forget()
    model.start_answer(prompt)
    greedy = [model.step() for _ in range(size + 3)]
    rows = [row.copy() for row in model._pending_rows]
    model.forget()
    model.start_answer(prompt)
    assert model.check_draft([s.token for s in greedy], size) == len(greedy)
    assert all((a == b).all() for a, b in zip(rows, model._pending_rows))
    assert model.pending == [] and len(model.hidden) == len(greedy)  # held back until a proposal reads them


@pytest.mark.models
def test_a_wrong_draft_is_rolled_back_and_costs_nothing_when_wrong_from_its_first_token(offline_members):
    member = offline_members(*PAIR)[0]
    model = member.model
    prompt = prompt_tokens(member, [Message("user", PROMPTS[1])])
    model.forget()
    model.start_answer(prompt)
    first = model.next_greedy_token()
    before = model.decoded_tokens
    wrong = model.tokenize(b" Bananas are yellow")
    assert wrong[0] != first and model.check_draft(wrong) == 0
    assert model.decoded_tokens == before  # nothing decoded
    right_then_wrong = [first, *model.tokenize(b" zebra zebra zebra")]
    kept = model.check_draft(right_then_wrong, model.exact_batch_size())
    assert kept >= 1 and model.hidden == right_then_wrong[:kept]
    # The rejected cells are gone: the next greedy steps are the model's own.
    steps = [model.step() for _ in range(kept + 2)]
    model.forget()
    model.start_answer(prompt)
    assert [s.token for s in steps] == [model.step().token for _ in range(kept + 2)]


@pytest.mark.models
def test_sampling_never_drafts(offline_members):
    members = offline_members(*PAIR)
    warm_up(members)
    sampled, _ = answer(members, PROMPTS[1], "cool", "auto", max_tokens=24, sampling=Sampling(temperature=0.8, seed=3))
    assert sampled.stats.draft_cycles == 0 and sampled.stats.drafter == ""


@pytest.mark.models
def test_cool_drafting_counts_the_drafted_tokens_the_drafters_own_proposals_read(offline_members):
    """The stop rule credits those: every cool round would have decoded them anyway."""
    members = offline_members(*PAIR)
    warm_up(members)
    drafter = members[1].model
    before = drafter.hidden_read
    done, _ = answer(members, PROMPTS[0], "cool", "auto")
    assert done.stats.drafter == drafter.name and done.stats.draft_cycles > 0
    assert drafter.hidden_read > before
