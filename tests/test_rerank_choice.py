"""Cool+R chooses among complete, non-empty answers only, and reports the chosen one's own figures (issue 18.3)."""

from __future__ import annotations

import pytest

from coolfusion_local.engine.modes import answer_settings
from coolfusion_local.engine.events import AnswerDone, AnswerReranked, Message, Notice
from coolfusion_local.engine.fusion import generate
from coolfusion_local.engine.rerank import competing, generate_reranked, rank_answers
from coolfusion_local.engine.scoring import ScorePolicy

QUESTION = [Message("user", "What is 6 times 7?")]
ANSWER = "6 times 7 equals 42."


def test_only_complete_non_empty_answers_compete():
    written = {
        "fused": (ANSWER, "eos"),
        "at-a-stop-string": ("6 times 7 is", "stop_string"),  # complete as the user defined it
        "at-the-limit": ("6 times 7 is 42, because", "max_tokens"),  # the same cap for every answer
        "empty": ("", "eos"),
        "blank": ("  \n", "max_tokens"),
        "looped": ("The answer is", "loop"),
        "failed": ("The answer", "error"),
        "context-full": ("The", "context_full"),
    }
    assert competing(written) == {"fused": (ANSWER, True), "at-a-stop-string": ("6 times 7 is", False),
                                  "at-the-limit": ("6 times 7 is 42, because", False)}


@pytest.mark.models
def test_an_empty_answer_never_wins_over_a_written_one(offline_members):
    # Its mean NLL is 0 (perplexity 1) under every model and the lead's veto never blocks it: it used to win.
    members = offline_members("qwen-coder-0.5b", "smollm2-135m")
    answers = {"fused": (ANSWER, True), "qwen-coder-0.5b": (ANSWER + " Six sevens.", True),
               "smollm2-135m": ("", False)}
    reranked = rank_answers(members, QUESTION, answers, ScorePolicy())
    assert reranked.chosen in ("fused", "qwen-coder-0.5b") and reranked.text.startswith(ANSWER)
    assert set(reranked.answers) == set(answers) and "smollm2-135m" not in reranked.scores
    # The only answer left is chosen without scoring.
    alone = rank_answers(members, QUESTION, {"fused": ("", True), "smollm2-135m": (ANSWER, False)}, ScorePolicy())
    assert alone.chosen == "smollm2-135m" and alone.scores == {}


def _cool_r(members, messages, **settings) -> list:
    for member in members:
        member.model.forget()  # the same answers whatever ran before
    events = list(generate_reranked(members, messages, answer_settings(mode="cool+r", **settings)))
    assert isinstance(events[-1], AnswerDone)
    return events


@pytest.mark.models
def test_a_solo_answer_the_loop_guard_cut_is_left_out(offline_members):
    # SmolLM2 alone loops on this prompt (test_sampling.py): its answer ends with stop reason "loop".
    members = offline_members("qwen-coder-0.5b", "smollm2-135m")
    haiku = [Message("user", "Write a haiku about autumn rain, then explain it in one sentence.")]
    events = _cool_r(members, haiku, max_tokens=48, loop_guard=True)
    reranked = next(e for e in events if isinstance(e, AnswerReranked))
    assert reranked.answers["smollm2-135m"]  # written and shown, but not scored nor chosen
    assert "smollm2-135m" not in reranked.scores and reranked.chosen != "smollm2-135m"
    notices = [e.message for e in events if isinstance(e, Notice)]
    assert any("smollm2-135m (loop)" in n for n in notices), notices
    assert events[-1].stop_reason == "eos" and events[-1].text == reranked.text


@pytest.mark.models
def test_the_chosen_answer_reports_its_own_stop_reason_and_tokens(offline_members):
    # Greedy, the fused answer and Qwen's start "6 times 7 is 42." and SmolLM2's "To find 6 times 7, ...":
    # the stop string leaves the first two empty (they used to win, perplexity 1) and ends SmolLM2's early.
    members = offline_members("qwen-coder-0.5b", "smollm2-135m")
    stop = ["6 times"]
    events = _cool_r(members, QUESTION, max_tokens=48, stop=stop)
    reranked = next(e for e in events if isinstance(e, AnswerReranked))
    [smollm2] = offline_members("smollm2-135m")
    smollm2.model.forget()
    own = list(generate([smollm2], QUESTION, answer_settings(mode="solo", max_tokens=48, stop=stop)))[-1]
    assert reranked.answers["fused"] == "" and own.text.strip() and own.stop_reason == "stop_string"
    done = events[-1]
    assert reranked.chosen == "smollm2-135m" and done.text == own.text
    assert done.stop_reason == "stop_string"  # was reported as max_tokens
    assert done.stats.answer_tokens == own.stats.answer_tokens  # was the fused pass's count
    assert done.stats.mode == "cool+r" and done.stats.seconds > own.stats.seconds
