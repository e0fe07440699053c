"""Which two systems a comparison sets against each other, and who is shown as A.

A system is a mode the engine knows: cool, cool+r, adaptive or solo:NAME. The
default pairing is the configured fusion mode against the lead model alone:
"does fusing help me, over the model I would otherwise ask?"

Both systems of one comparison answer with the same sampling settings and the same
seed (drawn once per comparison), so only the system differs. Which of them is
shown as A is a fair coin per comparison, recorded with it: the report measures
how often A won (position bias).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

from ..engine.modes import FUSION_MODES, SOLO_PREFIX, solo_name
from ..engine.sampling import Sampling
from ..errors import CoolfusionError

@dataclass(frozen=True)
class Pairing:
    """Two different systems, in the order the user named them (the report's order too)."""

    first: str
    second: str

    @property
    def label(self) -> str:
        return f"{self.first} vs {self.second}"

    @property
    def systems(self) -> tuple[str, str]:
        return self.first, self.second

    @classmethod
    def parse(cls, text: str, model_names: Sequence[str]) -> "Pairing":
        """"cool:solo:qwen" is ambiguous, so the separator is " vs " or a comma: "cool,solo:qwen"."""
        parts = [p.strip() for p in (text.split(" vs ") if " vs " in text else text.split(","))]
        if len(parts) != 2 or not all(parts):
            raise CoolfusionError(
                f"pairing {text!r}: name two systems, e.g. 'cool,solo:NAME' or 'adaptive vs cool'", exit_code=2
            )
        for part in parts:
            check_system(part, model_names)
        if parts[0] == parts[1]:
            raise CoolfusionError(f"pairing {text!r}: a system against itself tells nothing", exit_code=2)
        return cls(parts[0], parts[1])


def check_system(system: str, model_names: Sequence[str]) -> str:
    if system in FUSION_MODES or solo_name(system) in model_names:
        return system
    choices = ", ".join([*FUSION_MODES, *(f"{SOLO_PREFIX}{n}" for n in model_names)])
    raise CoolfusionError(f"unknown system {system!r}; choose from: {choices}", exit_code=2)


def default_pairing(mode: str, lead: str) -> Pairing:
    """The configured fusion mode (cool when the chat is set to a model alone) against the lead alone."""
    fused = mode if mode in FUSION_MODES else "cool"
    return Pairing(fused, f"{SOLO_PREFIX}{lead}")


def all_pairings(systems: Sequence[str]) -> list[Pairing]:
    return [Pairing(a, b) for i, a in enumerate(systems) for b in systems[i + 1:]]


def draw_order(pairing: Pairing, rng: random.Random | None = None) -> tuple[str, str]:
    """(system shown as A, system shown as B): a fair coin each time."""
    first_is_a = (rng or random.SystemRandom()).random() < 0.5
    return (pairing.first, pairing.second) if first_is_a else (pairing.second, pairing.first)


def shared_sampling(sampling: Sampling) -> Sampling:
    """One concrete seed for both answers of a comparison (greedy needs none)."""
    return sampling.with_seed()
