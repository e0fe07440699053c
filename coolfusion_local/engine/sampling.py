"""How each source model picks its own next token while it proposes a segment.

`temperature == 0` is greedy decoding (the engine's behaviour before sampling
existed, token for token). Cross-scoring never samples: every model scores
every candidate by its plain log-probabilities, whatever these settings are.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.0
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    seed: int | None = None  # None: a fresh random seed per answer

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


GREEDY = Sampling()
