"""Cool+R: fuse, let every model also answer alone, keep the best whole answer.

After the fused answer, each source model writes its own whole answer; then
every model scores every answer (mean token NLL over the answer, in one
batched call per model) and the lowest combined perplexity is the final
answer. The paper reports this as its strongest variant (GSM8K 81.2 vs 74.7).
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Iterator

from ..errors import CoolfusionError
from .events import AnswerDone, AnswerReranked, Notice, SegmentChosen, SoloAnswerStarted, SoloTextDelta
from .fusion import ANSWER_RESERVE, AnswerSettings, Member, fit_prompts, generate, lead_member
from .scoring import ScorePolicy
from .source_model import ContextFull, Scored

FUSED = "fused"


def _score_answers(member: Member, prompt: list[int], answers: dict[str, tuple[str, bool]]) -> dict[str, float]:
    """Mean token NLL of each answer under `member`, answers scored side by side."""
    model = member.model
    model.start_answer(prompt)
    requests = []
    for text, ends in answers.values():
        start, tokens = model.continuation(text.encode("utf-8"), context_words=0)
        requests.append((start, tokens, ends))
    try:
        results: list[Scored] = model.score(requests)
    except ContextFull:
        # Not all answers fit in the context at once: score them one by one.
        results = [model.score([request])[0] for request in requests]
    return {source: result.mean_nll for source, result in zip(answers, results)}


def rank_answers(
    members: list[Member],
    messages,
    answers: dict[str, tuple[str, bool]],
    policy: ScorePolicy,
) -> AnswerReranked:
    """Every model scores every whole answer; the policy picks one.

    `answers` maps a source ("fused" or a model name) to (text, ended by the
    model's end of turn). The lead model's own answer is the one its veto
    falls back to.
    """
    prompts, _ = fit_prompts(members, messages, ANSWER_RESERVE)
    # Identical answers are scored once.
    distinct: dict[str, tuple[str, bool]] = {}
    for source, answer in answers.items():
        if answer not in distinct.values():
            distinct[source] = answer
    by_scorer = {m.name: _score_answers(m, prompts[m.name], distinct) for m in members}
    keys = list(distinct)
    lead = lead_member(members)
    lead_answer = answers.get(lead.name)
    lead_key = next((key for key in keys if distinct[key] == lead_answer), None)
    chosen = policy.choose(members, keys, by_scorer, lead, lead_key)
    scores = {source: {scorer: round(by_scorer[scorer][source], 5) for scorer in by_scorer} for source in keys}
    return AnswerReranked(chosen, distinct[chosen][0], scores, {source: answer[0] for source, answer in answers.items()})


def generate_reranked(
    members: list[Member],
    messages,
    settings: AnswerSettings,
    cancel: threading.Event | None = None,
) -> Iterator:
    started = time.perf_counter()
    fused: AnswerDone | None = None
    for event in generate(members, messages, replace(settings, mode="cool"), cancel):
        if isinstance(event, AnswerDone):
            fused = event
            break
        yield event
    stats = fused.stats
    stats.mode = "cool+r"
    if fused.stop_reason in ("stopped", "error", "context_full") or len(members) == 1:
        yield fused
        return

    answers: dict[str, tuple[str, bool]] = {FUSED: (fused.text, fused.stop_reason == "eos")}
    for member in members:
        yield SoloAnswerStarted(member.name)
        for event in generate([member], messages, replace(settings, mode="solo"), cancel):
            if isinstance(event, SegmentChosen):
                yield SoloTextDelta(member.name, event.text)
            elif isinstance(event, Notice):
                yield event
            elif isinstance(event, AnswerDone):
                if event.stop_reason == "stopped":
                    stats.seconds = time.perf_counter() - started
                    yield AnswerDone(fused.text, "stopped", stats)
                    return
                answers[member.name] = (event.text, event.stop_reason == "eos")

    rerank_started = time.perf_counter()
    try:
        reranked = rank_answers(members, messages, answers, settings.policy)
    except CoolfusionError as error:  # a context too small to score an answer, a tokenising failure
        # The fused and solo answers are already written: keep the fused one.
        stats.rerank_seconds = time.perf_counter() - rerank_started
        stats.seconds = time.perf_counter() - started
        yield Notice(f"the final rerank failed, so the fused answer is kept: {error}")
        yield AnswerDone(fused.text, fused.stop_reason, stats)
        return
    stats.rerank_seconds = time.perf_counter() - rerank_started
    stats.seconds = time.perf_counter() - started
    ends = answers[reranked.chosen][1]
    yield reranked
    reason = fused.stop_reason if reranked.chosen == FUSED else ("eos" if ends else "max_tokens")
    yield AnswerDone(reranked.text, reason, stats)
