"""The token bookkeeping every source model keeps, local or served.

A source model holds the shared text (the prompt and the answer agreed so
far) as its own token ids, then its own pending look-ahead: tokens it has
proposed past the shared text, kept because if its proposal wins they are
exactly what it would write next. `SourceModel` mirrors these ids in its KV
cache; `RemoteModel` sends them to a server. What the ids mean, how the
shared text grows by re-tokenising a few words, and how much room is left
are the same for both, and live here.
"""

from __future__ import annotations

from ..errors import CoolfusionError
from .members import Step
from .vocabulary import Vocabulary


class SharedText(Vocabulary):
    """Shared text + pending look-ahead as token ids: `_cache[:_committed]` is shared,
    `_cache[_answer_start:_committed]` is the answer so far, the rest is pending."""

    name: str
    n_ctx: int

    def _clear_shared_text(self, prompt_tokens: list[int] | None = None) -> None:
        self._cache: list[int] = list(prompt_tokens or [])
        self._committed = self._answer_start = len(self._cache)
        self._pending_nll: list[float] = []

    @property
    def answer_tokens(self) -> list[int]:
        return self._cache[self._answer_start : self._committed]

    @property
    def committed_tokens(self) -> int:
        return self._committed

    @property
    def pending(self) -> list[Step]:
        """Proposed tokens already past the shared text."""
        tokens = self._cache[self._committed :]
        return [Step(t, n, False) for t, n in zip(tokens, self._pending_nll)]

    def room(self) -> int:
        """Tokens that still fit in the context after the shared text."""
        return self.n_ctx - self._committed

    def continuation(self, text: bytes, context_words: int = 4) -> tuple[int, list[int]]:
        """Tokens for appending `text` to the shared text: (start position, tokens).

        Re-tokenises only a window of a few words before the end of the shared
        answer, plus `text`, so merges across the join come out as this
        model's tokenizer would make them; `start` is where the window's
        tokens first differ from the cache (usually the end of the shared text).
        """
        answer = self.answer_tokens
        window_start = len(answer)
        words = 0
        while window_start > 0 and words <= context_words:
            window_start -= 1
            if self.piece(answer[window_start])[:1].isspace():
                words += 1
        for start_index in (window_start, 0):
            old = answer[start_index:]
            left = self.detokenize(old)
            fresh = self.tokenize_exactly(left + text)
            if fresh is None:
                continue
            same = 0
            while same < min(len(old), len(fresh)) and old[same] == fresh[same]:
                same += 1
            return self._answer_start + start_index + same, fresh[same:]
        raise CoolfusionError(f"model {self.name!r}: cannot tokenise the answer so it reads back the same")
