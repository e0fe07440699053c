"""Both answers of one comparison, written on the engine (call from the one engine thread).

The two systems answer one after the other, never at once (two models decoding
together on a small CPU are far slower than in turn), in an order drawn at random
and independent of which is shown as A: a progress line that moves at the first
system's pace tells nothing about the side. Both use the comparison's sampling
settings and seed.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import replace
from typing import Callable

from ..engine.events import AnswerDone, GenerationStats, Message, SegmentChosen, SoloTextDelta
from ..engine.fusion import lead_member
from ..engine.modes import solo_name
from ..engine.sampling import Sampling
from ..errors import CoolfusionError
from .comparisons import Answer, Comparison

# (words written so far over both answers, answers finished) -> None
Progress = Callable[[int, int], None]


def lead_name(engine) -> str:
    """The loaded model that leads fusion (engine/lead.py), the one the default pairing sets alone."""
    loaded = [engine.member(n) for n in engine.model_names if engine.status(n).state in ("loaded",)]
    if not loaded:
        raise CoolfusionError("no model is loaded yet, so there is no lead to compare against")
    return lead_member(loaded).name


def sampling_of(comparison: Comparison) -> Sampling:
    fields = dict(comparison.settings.get("sampling") or {})
    fields["seed"] = comparison.seed
    return Sampling(**{k: v for k, v in fields.items() if k in Sampling.__dataclass_fields__})


def answer_comparison(
    engine,
    comparison: Comparison,
    cancel: threading.Event,
    progress: Progress | None = None,
    rng: random.Random | None = None,
) -> None:
    """Fill in `answer_a` and `answer_b`; never raises for a system that cannot answer (its Answer has the error)."""
    _load_models_alone(engine, comparison)
    sampling = sampling_of(comparison)
    max_tokens = comparison.settings.get("max_tokens")
    messages = [*comparison.context, Message("user", comparison.prompt)]
    sides = ["A", "B"]
    (rng or random.SystemRandom()).shuffle(sides)
    words = 0
    finished = 0
    for side in sides:
        system = comparison.system_of(side)
        done = None
        text = ""
        started = time.perf_counter()
        if cancel.is_set():
            done = AnswerDone("", "stopped", GenerationStats(mode=system))
        else:
            try:
                for event in engine.generate(messages, mode=system, max_tokens=max_tokens, sampling=sampling,
                                             cancel=cancel):
                    if isinstance(event, (SegmentChosen, SoloTextDelta)):
                        if isinstance(event, SegmentChosen):
                            text += event.text
                        words += len(event.text.split())
                        if progress is not None:
                            progress(words, finished)
                    elif isinstance(event, AnswerDone):
                        done = event
            except CoolfusionError as error:
                done = AnswerDone(text, "error", GenerationStats(mode=system), error=str(error))
        if done is None:  # the generator ended without its last event (cancelled inside)
            done = AnswerDone(text, "stopped", GenerationStats(mode=system))
        stats = done.stats.as_dict()
        stats["wall_seconds"] = round(time.perf_counter() - started, 3)
        stats["system"] = system  # the engine says "solo" for any model alone
        answer = Answer(done.text.strip(), done.stop_reason, done.error, stats)
        if side == "A":
            comparison.answer_a = answer
        else:
            comparison.answer_b = answer
        finished += 1
        if progress is not None:
            progress(words, finished)
    comparison.settings = {**comparison.settings, "generation_order": sides}


def _load_models_alone(engine, comparison: Comparison) -> None:
    """A pairing may set a model models.toml leaves out of fusion alone (solo:NAME): load it first.
    One that cannot load answers with its one-line reason, as the engine gives it."""
    for system in (comparison.system_a, comparison.system_b):
        name = solo_name(system)
        if name in engine.model_names and engine.status(name).info is None and engine.status(name).state != "failed":
            for _event in engine.load([name]):
                pass


def settings_for(sampling: Sampling, max_tokens: int | None, models: list[str]) -> dict:
    """What both answers were written with (the seed is kept in its own column)."""
    return {"sampling": replace(sampling, seed=None).as_dict(), "max_tokens": max_tokens, "models": models}
