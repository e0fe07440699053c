"""What a fusion member is, and what the engine asks of the model inside it.

Two kinds of model take part in fusion: `SourceModel` (a GGUF in llama.cpp,
engine/source_model.py) and `RemoteModel` (a model served over
/v1/completions, models/remote/member.py). The fusion loop, drafting,
scoring and Cool+R see only `MemberModel`: every question they ask is a
method here, and what a kind cannot do is a declared capability
(`can_draft`, `is_local`), never a probe for a method.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Protocol

import numpy as np

from ..errors import CoolfusionError
from .lead import Standing
from .prompts import ChatFormat
from .sampling import Sampling

if TYPE_CHECKING:  # it loads llama.cpp, which importing the engine must not
    from .token_sampler import TokenSampler


class ContextFull(CoolfusionError):
    """The model's context window cannot hold more tokens."""


@dataclass(frozen=True)
class Step:
    """One proposed token: its id, its NLL under the model, whether it ends the turn."""

    token: int
    nll: float
    ends: bool


@dataclass
class Scored:
    """What scoring one candidate's tokens gave, and where its cells live (a local model's
    scoring sequence; a served model leaves those fields at 0 / None)."""

    nll_sum: float
    count: int
    sequence: int
    start: int
    decoded: int  # candidate tokens whose cells the sequence holds
    last_row: np.ndarray | None  # logits after the last token, when it was decoded

    @property
    def mean_nll(self) -> float:
        return self.nll_sum / max(self.count, 1)


class TokenPicker(Protocol):
    """A model's sampler for one answer (llama.cpp's chain locally, the server's remotely)."""

    def close(self) -> None: ...


class MemberModel(Protocol):
    """What the engine asks of a model taking part in fusion."""

    name: str
    n_ctx: int
    n_params: int | None
    n_layers: int
    n_gpu_layers: int
    vocab_size: int
    bos_token: int
    eos_token: int
    add_bos: bool
    # Capabilities, declared by each kind of model:
    is_local: bool  # runs in this process (llama.cpp), as opposed to on a server
    can_draft: bool  # implements `DraftingModel` (drafts and checks drafts in batches)
    decode_calls: int  # llama_decode calls so far (a batch counts once); 0 where a server decodes

    # The text <-> token half.
    def tokenize(self, text: bytes, *, special: bool = False, add_bos: bool = False) -> list[int]: ...
    def tokenize_exactly(self, text: bytes) -> list[int] | None: ...
    def piece(self, token: int) -> bytes: ...
    def token_text(self, token: int) -> str: ...
    def detokenize(self, tokens: list[int]) -> bytes: ...
    def chat_template(self) -> str | None: ...

    # The shared text and this model's look-ahead past it.
    @property
    def answer_tokens(self) -> list[int]: ...
    @property
    def committed_tokens(self) -> int: ...
    @property
    def pending(self) -> list[Step]: ...
    def room(self) -> int: ...
    def continuation(self, text: bytes, context_words: int = 4) -> tuple[int, list[int]]: ...
    def start_answer(self, prompt_tokens: list[int]) -> int: ...
    def forget(self) -> None: ...
    def close(self) -> None: ...

    # Proposing, scoring, committing.
    def sampler(self, sampling: Sampling) -> TokenPicker: ...
    def step(self, sampler: TokenPicker | None = None) -> Step: ...
    def end_nll(self) -> float: ...
    def next_token_nll(self, token: int) -> float: ...
    def top_margin(self, index: int, sampler: TokenSampler | None = None) -> float: ...
    def score(self, requests: list[tuple[int, list[int], bool]]) -> list[Scored]: ...
    def commit(self, start: int, tokens: list[int], scored: Scored | None = None) -> None: ...
    def drop_hidden(self) -> None: ...


class DraftingModel(MemberModel, Protocol):
    """A member model with `can_draft`: what engine/drafting.py asks of it besides."""

    hidden_read: int

    @property
    def seconds_per_decode(self) -> float | None: ...
    @property
    def look_ahead(self) -> list[int]: ...
    @property
    def hidden(self) -> list[int]: ...
    def next_greedy_token(self) -> int: ...
    def draft(self, enough: Callable[[bytes], bool], limit: int) -> bool: ...
    def exact_batch_size(self) -> int: ...
    def check_draft(self, guess: list[int], chunk: int = ...) -> int: ...


@dataclass
class Member:
    """A loaded model taking part in fusion."""

    name: str
    model: MemberModel
    chat: ChatFormat
    weight: float = 1.0
    standing: Standing | None = None  # what makes it lead (engine/lead.py); None: its weight alone
    temperature: float | None = None  # models.toml's own temperature for this model
    # Whether drafting paid when this model led, kept across answers (engine/drafting.py).
    draft_records: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.standing is None:
            self.standing = Standing(self.name, weight=self.weight)


@dataclass
class Proposal:
    member: Member
    text: bytes
    tokens: list[int]
    nlls: list[float]
    ends: bool
    forced: bool
    end_nll: float = 0.0
    # The lead's top-1 − top-2 margin at each of its tokens and after them (guard.py);
    # worked out when first needed, before the round commits.
    margins: list[float] | None = None

    @property
    def key(self) -> tuple[bytes, bool]:
        return (self.text, self.ends)

    def own_nll(self) -> tuple[float, int]:
        total = sum(self.nlls) + (self.end_nll if self.ends else 0.0)
        return total, len(self.nlls) + (1 if self.ends else 0)
