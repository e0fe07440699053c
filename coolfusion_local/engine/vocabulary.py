"""A model's tokenizer: text <-> tokens through llama.cpp's vocabulary.

Kept apart from `SourceModel`'s KV-cache work: everything here is pure
text <-> token mapping, cheap, and the same whether or not a context exists
(a `vocab_only` load has this half alone).
"""

from __future__ import annotations

import ctypes

import llama_cpp
import numpy as np


class Vocabulary:
    """Tokenising, token pieces (cached) and end-of-turn tokens of one model."""

    def __init__(self, vocab) -> None:
        self._vocab = vocab
        self.vocab_size = llama_cpp.llama_vocab_n_tokens(vocab)
        self.add_bos = bool(llama_cpp.llama_vocab_get_add_bos(vocab))
        self.bos_token = llama_cpp.llama_vocab_bos(vocab)
        self.eos_token = llama_cpp.llama_vocab_eos(vocab)
        self._eog = np.array(
            [t for t in range(self.vocab_size) if llama_cpp.llama_vocab_is_eog(vocab, t)],
            dtype=np.int64,
        )
        self._pieces: dict[int, bytes] = {}

    def token_text(self, token: int) -> str:
        """The token's text with special tokens rendered (e.g. '<|im_end|>')."""
        return self._piece(token, special=True).decode("utf-8", errors="replace")

    def tokenize(self, text: bytes, *, special: bool = False, add_bos: bool = False) -> list[int]:
        """Tokens of `text`; `special=False` keeps e.g. '<|im_end|>' plain text."""
        capacity = len(text) + 8
        while True:
            buffer = (llama_cpp.llama_token * capacity)()
            n = llama_cpp.llama_tokenize(self._vocab, text, len(text), buffer, capacity, add_bos, special)
            if n >= 0:
                return list(buffer[:n])
            capacity = -n

    def _piece(self, token: int, special: bool = False) -> bytes:
        size = 64
        while True:
            buffer = ctypes.create_string_buffer(size)
            n = llama_cpp.llama_token_to_piece(self._vocab, token, buffer, size, 0, special)
            if n >= 0:
                return buffer.raw[:n]
            size = -n

    def piece(self, token: int) -> bytes:
        """The bytes a token stands for in plain text (special tokens: empty)."""
        piece = self._pieces.get(token)
        if piece is None:
            piece = self._pieces[token] = self._piece(token)
        return piece

    def detokenize(self, tokens: list[int]) -> bytes:
        return b"".join(self.piece(t) for t in tokens)

    def is_end(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))

    def tokenize_exactly(self, text: bytes) -> list[int] | None:
        """Tokens that read back as exactly `text`, or None.

        SentencePiece vocabularies with a space prefix (Llama 2 style) turn
        "Hello" into "▁Hello", which reads back " Hello". Then either the
        prefix stands in for the text's own leading space, or the text is
        tokenised after a newline, which takes the prefix, and those leading
        tokens are dropped.
        """
        tokens = self.tokenize(text)
        if self.detokenize(tokens) == text:
            return tokens
        if text[:1] == b" ":
            tokens = self.tokenize(text[1:])
            if self.detokenize(tokens) == text:
                return tokens
        tokens = self.tokenize(b"\n" + text)
        for lead in range(1, min(len(tokens), 4)):
            if self.detokenize(tokens[lead:]) == text:
                return tokens[lead:]
        return None
