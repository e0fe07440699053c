"""Cool+R: fuse, let every model also answer alone, keep the best whole answer.

After the fused answer, each source model writes its own whole answer; then
every model scores every answer (mean token NLL over the answer, in one
batched call per model) and the lowest combined perplexity is the final
answer. The paper reports this as its strongest variant (GSM8K 81.2 vs 74.7).

Only answers that could be the final one compete (`competing`): an empty
answer has mean NLL 0, perplexity 1, and would beat every real one; an answer
that failed (`error`), was cut by a full context (`context_full`) or by the
loop guard (`loop`) is not an answer the user should get instead of a
complete one. An answer that ended at a stop string is complete as the user
defined it, and competes. The final answer keeps its own stop reason and
token count (docs/chat.md, "Cool+R").
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Iterator

from ..errors import CoolfusionError
from .events import AnswerDone, AnswerReranked, Notice, SegmentChosen, SoloAnswerStarted, SoloTextDelta
from .fusion import ANSWER_RESERVE, AnswerSettings, fit_prompts, generate, lead_member
from .scoring import ScorePolicy
from .members import ContextFull, Member, Scored

FUSED = "fused"

# Stop reasons of answers that may be chosen: complete (eos, a stop string) or
# cut at the length the user asked for (max_tokens, the same cap for all).
COMPETING_STOPS = ("eos", "stop_string", "max_tokens")


def competes(text: str, stop_reason: str) -> bool:
    """Whether an answer that ended with `stop_reason` may be Cool+R's final answer."""
    return bool(text.strip()) and stop_reason in COMPETING_STOPS


def competing(written: dict[str, tuple[str, str]]) -> dict[str, tuple[str, bool]]:
    """The rerank's input from (text, stop reason) per source: (text, ended by the model's end of turn)
    for the answers that compete."""
    return {source: (text, reason == "eos") for source, (text, reason) in written.items() if competes(text, reason)}


def _left_out(written: dict[str, tuple[str, str]]) -> str:
    """The answers that do not compete and why, for the notice."""
    return ", ".join(f"{source} ({'empty' if not text.strip() else reason})"
                     for source, (text, reason) in written.items() if not competes(text, reason))


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
    falls back to. Empty answers never win over a non-empty one (their mean
    NLL is 0): they are left out unless no answer has text. A single answer
    left is chosen without scoring.
    """
    texts = {source: answer[0] for source, answer in answers.items()}
    written = {source: answer for source, answer in answers.items() if answer[0].strip()}
    answers = written or answers
    if len(answers) == 1:
        [(only, (text, _))] = answers.items()
        return AnswerReranked(only, text, {}, texts)
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
    return AnswerReranked(chosen, distinct[chosen][0], scores, texts)


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

    finished: dict[str, AnswerDone] = {FUSED: fused}
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
                finished[member.name] = event

    written = {source: (done.text, done.stop_reason) for source, done in finished.items()}
    answers = competing(written)
    if len(answers) < len(written):
        kept = "the fused answer is kept" if not answers else "they are not chosen"
        yield Notice(f"Cool+R leaves out answers that are empty, failed or cut short: {_left_out(written)}; {kept}")
    if not answers:
        stats.seconds = time.perf_counter() - started
        yield AnswerDone(fused.text, fused.stop_reason, stats)
        return
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
    chosen = finished[reranked.chosen]
    # The chosen answer's own stop reason and length (what max_tokens capped, in the tokens of the
    # model that wrote it); the time is the whole Cool+R run's, so tokens/s is what the user got.
    stats.answer_tokens = chosen.stats.answer_tokens
    yield replace(reranked, answers={source: text for source, (text, _) in written.items()})
    yield AnswerDone(reranked.text, chosen.stop_reason, stats)
