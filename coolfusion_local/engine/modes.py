"""The fusion modes: what each one is called, what runs it, and what it allows.

Every place that lists modes or asks what one means reads this registry:
models.toml's checks, the engine, the CLI's `--mode`/`--modes`, the chat's
mode switch, the API's `coolfusion:MODE` models and eval. Adding a mode is
one entry here plus its runner (a generator of events with the signature of
`fusion.generate`).

The runners read a mode's flags from the `AnswerSettings` built here
(`answer_settings`), never by comparing mode names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

from ..errors import CoolfusionError
from .fusion import AnswerSettings, generate
from .rerank import generate_reranked

SOLO_PREFIX = "solo:"  # "solo:NAME": the model NAME alone


@dataclass(frozen=True)
class Mode:
    name: str
    description: str
    runner: Callable[..., Iterator]  # (members, messages, settings, cancel) -> events ending with AnswerDone
    whole_at_end: bool = False  # the answer is known only at its end: nothing streams as it is written
    may_draft: bool = False  # greedy drafting may run (engine/drafting.py)
    lead_first: bool = False  # the lead proposes alone; the others only where it is unsure


MODES: dict[str, Mode] = {
    mode.name: mode
    for mode in (
        Mode("cool", "Cool-Fusion: every model proposes each segment; the best-scored one is shared",
             generate, may_draft=True),
        Mode("cool+r", "Cool-Fusion, then every model answers alone and every model scores every "
                       "whole answer: the best one is the answer", generate_reranked,
             whole_at_end=True, may_draft=True),
        Mode("adaptive", "Cool-Fusion that asks the other models only where the lead is unsure",
             generate, may_draft=True, lead_first=True),
        Mode("solo", "one model alone (solo:NAME)", generate),
    )
}
# The modes a user names as they are (the solo entry is named solo:NAME).
FUSION_MODES: tuple[str, ...] = tuple(name for name in MODES if name != "solo")


def solo_name(mode: str) -> str | None:
    """The model named by "solo:NAME", else None."""
    return mode[len(SOLO_PREFIX):] if mode.startswith(SOLO_PREFIX) else None


def mode_named(mode: str) -> Mode:
    """The registry's entry for `mode` ("solo:NAME" -> the solo entry); KeyError for no mode."""
    return MODES["solo"] if solo_name(mode) is not None else MODES[mode]


def check_mode(mode: str, names: Sequence[str]) -> str:
    """`mode` when it is a fusion mode or solo:NAME of one of `names`; else a one-line error (exit 2)."""
    if mode in FUSION_MODES:
        return mode
    if solo_name(mode) in names:
        return mode
    choices = ", ".join([*FUSION_MODES, *(f"{SOLO_PREFIX}{n}" for n in names)])
    raise CoolfusionError(f"unknown mode {mode!r}; choose one of: {choices}", exit_code=2)


def answer_settings(mode: str = "cool", **fields) -> AnswerSettings:
    """How to run one answer in `mode` (a fusion mode, "solo" or "solo:NAME"): its flags, plus `fields`."""
    entry = mode_named(mode)
    return AnswerSettings(mode=entry.name, lead_first=entry.lead_first, may_draft=entry.may_draft, **fields)
