"""How each source model picks its own next token while it proposes a segment.

`temperature == 0` is plain greedy decoding, the engine's behaviour before
sampling existed, token for token: the other settings, the repeat penalty
included, are then ignored. Cross-scoring never samples: every model scores
every candidate by its plain log-probabilities, whatever these settings are.

`CHAT` holds the defaults of the chat app and `generate`: the values a
llama.cpp or Ollama user gets without asking (docs/sampling.md says why).
"""

from __future__ import annotations

import random
import zlib
from dataclasses import asdict, dataclass, replace

INT32_MAX = 2**31 - 1  # top_k and repeat_last_n are C ints in llama.cpp
SEED_MAX = 2**32 - 2  # a uint32; 2**32 - 1 is llama.cpp's "pick a random seed"


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

    def problem(self) -> str | None:
        """What is out of range, in one phrase naming the setting; None when all is well."""
        found = self.invalid_setting()
        return None if found is None else found[1]

    def invalid_setting(self) -> tuple[str, str] | None:
        """The first setting out of range and the phrase saying why: (`top_k`, `top_k 5e9 must be ...`).

        The one check of these values, whoever sets them (flags, models.toml, API
        requests): each must be finite and fit the C type llama.cpp takes (a
        top_k of 2**32 + 1 would reach it as 1), and a served member must be
        able to send it as JSON (which has no Infinity).
        """
        inf = float("inf")
        if not 0.0 <= self.temperature < inf:
            return "temperature", f"temperature {self.temperature:g} must be 0 (greedy) or above, and finite"
        if not 0 <= self.top_k <= INT32_MAX:
            return "top_k", f"top_k {self.top_k} must be between 0 (off) and {INT32_MAX}"
        if not 0.0 < self.top_p <= 1.0:
            return "top_p", f"top_p {self.top_p:g} must be above 0 and at most 1 (1 = off)"
        if not 0.0 <= self.min_p <= 1.0:
            return "min_p", f"min_p {self.min_p:g} must be between 0 (off) and 1"
        if not 0.0 < self.repeat_penalty < inf:
            return "repeat_penalty", f"repeat_penalty {self.repeat_penalty:g} must be above 0 (1 = off), and finite"
        if not 0 <= self.repeat_last_n <= INT32_MAX:
            return "repeat_last_n", f"repeat_last_n {self.repeat_last_n} must be between 0 (off) and {INT32_MAX}"
        if self.seed is not None and not 0 <= self.seed <= SEED_MAX:
            return "seed", f"seed {self.seed} must be between 0 and {SEED_MAX}"
        return None

    def with_seed(self) -> "Sampling":
        """These settings with a concrete seed: the one given, else a fresh random one."""
        if self.seed is not None or self.greedy:
            return self
        return replace(self, seed=random.SystemRandom().randrange(2**31))

    def for_model(self, name: str, temperature: float | None = None) -> "Sampling":
        """One model's settings within an answer.

        Its seed is derived from the answer's seed and its name, so each model
        draws its own numbers and the answer as a whole stays reproducible.
        A model's own `temperature` (models.toml) replaces the answer's, unless
        the answer is greedy: temperature 0 switches sampling off for all.
        """
        if self.greedy:
            return self
        seed = None if self.seed is None else zlib.crc32(f"{self.seed}:{name}".encode()) & 0x7FFFFFFF
        return replace(self, seed=seed, temperature=self.temperature if temperature is None else temperature)

    def summary(self) -> str:
        """One short line for a status bar or a log: "greedy" or the knobs that matter."""
        if self.greedy:
            return "greedy"
        text = f"temp {self.temperature:g} top-k {self.top_k} top-p {self.top_p:g} min-p {self.min_p:g}"
        if self.repeat_penalty != 1.0:
            text += f" rep {self.repeat_penalty:g}/{self.repeat_last_n}"
        if self.seed is not None:
            text += f" seed {self.seed}"
        return text

    def as_dict(self) -> dict:
        return asdict(self)


GREEDY = Sampling()
CHAT = Sampling(temperature=0.8, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.1, repeat_last_n=64)
