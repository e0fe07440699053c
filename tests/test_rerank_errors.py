"""Cool+R's final rerank failing keeps the answers already written (real models)."""

from __future__ import annotations

import pytest

from coolfusion_local.config import ModelSpec
from coolfusion_local.engine.modes import answer_settings
from coolfusion_local.engine import rerank
from coolfusion_local.fusion_engine import chat_format_for
from coolfusion_local.engine.events import AnswerDone, AnswerReranked, Message, Notice, SegmentChosen
from coolfusion_local.engine.members import ContextFull, Member
from coolfusion_local.engine.source_model import SourceModel

pytestmark = pytest.mark.models

QUESTION = [Message("user", "Write a long story about a lighthouse keeper and his cat.")]


@pytest.fixture(scope="module")
def small_context_member(offline_model_path):
    """Qwen with a context just big enough for the prompt and a short answer."""
    model = SourceModel("qwen-small", offline_model_path("qwen-coder-0.5b"), n_ctx=160)
    chat, _ = chat_format_for(ModelSpec(name="qwen-small", pypi="x"), model)
    yield Member("qwen-small", model, chat)
    model.close()


def texts(events) -> str:
    return "".join(e.text for e in events if isinstance(e, SegmentChosen))


def assert_fused_answer_kept(events, fused_text: str, reason: str) -> None:
    done = events[-1]
    assert isinstance(done, AnswerDone) and not any(isinstance(e, AnswerReranked) for e in events)
    notices = [e.message for e in events if isinstance(e, Notice)]
    assert any(n.startswith("the final rerank failed, so the fused answer is kept: ") for n in notices), notices
    assert "\n" not in notices[-1]
    assert done.stop_reason == reason and done.text == fused_text


def test_any_rerank_error_keeps_the_fused_answer(offline_members, small_context_member, monkeypatch):
    # The real error, from real models: a whole answer too long for the small context to score
    # (smollm2 writes the fused answer alone in practice, so a real run rarely reaches it).
    members = [offline_members("smollm2-135m")[0], small_context_member]
    long_answer = "The lighthouse keeper walked up the stairs again. " * 30
    with pytest.raises(ContextFull) as real:
        rerank.rank_answers(members, QUESTION, {"fused": ("Hi.", True), "smollm2-135m": (long_answer, False)},
                            rerank.ScorePolicy())

    def failing(*args, **kwargs):
        raise real.value

    monkeypatch.setattr(rerank, "rank_answers", failing)
    events = list(rerank.generate_reranked(members, QUESTION, answer_settings(mode="cool+r", max_tokens=12)))
    fused = next(i for i, e in enumerate(events) if not isinstance(e, (SegmentChosen, Notice)))
    assert_fused_answer_kept(events, texts(events[:fused]), events[-1].stop_reason)
    assert events[-1].stop_reason in ("eos", "max_tokens")
