"""Drafting within the context (issue 29 points 11 and 12), on real models with a tiny n_ctx.

11: a decode that fails in a later chunk of a draft check (the cache full) must
    not leave the earlier chunks' cells on sequence 0.
12: a draft never runs past the room left in the drafter's context, and
    `draft_max_segments` has a stated maximum.
"""

from __future__ import annotations

import llama_cpp
import pytest

from conftest import OFFLINE_MODELS
from coolfusion_local.config import ModelSpec
from coolfusion_local.engine.drafting import DraftSettings, Drafting
from coolfusion_local.engine.events import GenerationStats, Message
from coolfusion_local.engine.fusion import prompt_tokens
from coolfusion_local.engine.members import Member
from coolfusion_local.engine.source_model import SCORING_SEQUENCES, ContextFull, SourceModel
from coolfusion_local.errors import CoolfusionError
from coolfusion_local.fusion_engine import chat_format_for, load_config

GOOD_MODEL = '[[models]]\nname = "qwen"\npypi = "qwen2.5-coder-0.5b-instruct"\n'
TINY_CTX = 256
ANSWER_RESERVE = 64  # fusion's: the context a draft leaves free
PROMPT = "Write the numbers from 1 to 300, separated by commas."  # SmolLM2 writes on to the end of a 256-token context


def _load(offline_model_path, name: str) -> Member:
    model = SourceModel(name, offline_model_path(name), n_ctx=TINY_CTX)
    chat, _ = chat_format_for(ModelSpec(name=name, pypi=OFFLINE_MODELS[name]), model)
    return Member(name, model, chat)


def _last_position(model: SourceModel, sequence: int = 0) -> int:
    return llama_cpp.llama_memory_seq_pos_max(model._memory, sequence)


@pytest.mark.models
def test_a_draft_check_that_fails_in_a_later_chunk_leaves_no_cells_behind(offline_model_path):
    member = _load(offline_model_path, "smollm2-135m")
    model = member.model
    try:
        assert model.n_ctx == TINY_CTX
        prompt = prompt_tokens(member, [Message("user", PROMPT)])
        model.start_answer(prompt)
        model.draft(lambda text: False, limit=12)  # its own greedy path, to check as a guess
        guess = list(model.hidden)
        model.drop_hidden()
        assert len(guess) == 12 and _last_position(model) == len(prompt) - 1
        # Fill the cache on a spare sequence: one chunk of 4 still fits, the next does not.
        spare, filler = SCORING_SEQUENCES, TINY_CTX - len(prompt) - 6
        for start in range(0, filler, 32):
            model._decode([(guess[0], start + i, spare, False) for i in range(min(32, filler - start))])
        with pytest.raises(ContextFull):
            model.check_draft(guess, chunk=4)
        llama_cpp.llama_memory_seq_rm(model._memory, spare, -1, -1)  # room again
        # The first chunk's cells went with the failed check, and decoding goes on as before.
        assert _last_position(model) == len(prompt) - 1
        assert [model.step().token for _ in guess] == guess
    finally:
        model.close()


@pytest.mark.models
def test_a_draft_stops_at_the_room_left_in_the_drafters_context(offline_model_path):
    members = [_load(offline_model_path, "qwen-coder-0.5b"), _load(offline_model_path, "smollm2-135m")]
    lead, drafter = members
    try:
        messages = [Message("user", PROMPT)]
        for member in members:
            member.model.start_answer(prompt_tokens(member, messages))
        run = Drafting(members, lead, "cool", DraftSettings("auto", 1000), GenerationStats(),
                       may_draft=True, lead_first=False)
        run.drafter = drafter  # the cheaper model, without timing its decodes first
        run.segments = 1000  # as if a long run of drafts accepted whole had grown it
        room = min(m.model.room() for m in members) - 2
        run.before_round(b"", {m.name: 0 for m in members}, room, 10_000)  # raised ContextFull before
        drafted = len(drafter.model.look_ahead)
        assert 0 < drafted <= TINY_CTX - drafter.model.committed_tokens - ANSWER_RESERVE
        assert run.max_segments == 16  # and the setting itself is bounded
    finally:
        for member in members:
            member.model.close()


def test_draft_max_segments_has_a_stated_maximum(tmp_path):
    toml = tmp_path / "models.toml"
    toml.write_text(GOOD_MODEL + "[fusion]\ndraft_max_segments = 16\n")
    assert load_config(toml).fusion.draft_max_segments == 16
    toml.write_text(GOOD_MODEL + "[fusion]\ndraft_max_segments = 1000\n")
    with pytest.raises(CoolfusionError, match="draft_max_segments = 1000 is too large; use 16 or less"):
        load_config(toml)
