"""Token lists to and from text, for a server that takes prompts as text only (llama-cpp-python's).

Two things would get lost on the way:

* Such a server tokenises a text prompt with special tokens parsed
  (llama-cpp-python calls `llama_tokenize(..., special=True)`), so message
  text that spells a control token (a typed '<|im_end|>') would reach the
  model as the token itself: a user could close their turn and open a system
  turn. `prompt_text` writes the control tokens we hold as their text and
  breaks every control token's text inside plain text with a zero-width space
  (U+200B), so the server reads it as characters, as a local member does
  (`engine/fusion.py` `prompt_tokens`).
* The server returns generated tokens as text, each decoded alone with invalid
  bytes dropped: the byte tokens of a character split over several tokens (an
  emoji, a rare CJK character) come back as "". `ids_for_texts` maps them back
  through the completion's whole text, which holds the character: the bytes
  it needs are looked up among the vocabulary's byte-piece tokens.
"""

from __future__ import annotations

import functools

import llama_cpp

from ...engine.vocabulary import Vocabulary

# Breaks a control token's text in plain text; the server then splits it as
# characters (plus one token for the space) instead of matching the token.
BREAK = "\u200b"
# llama.cpp's tokenizer matches these tokens' texts only when special tokens are parsed.
_PARSED_AS_SPECIAL = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_UNKNOWN


class SplitCharacter(ValueError):
    """The tokens end inside a character: no text prompt can spell them."""


class TextTokens:
    """One vocabulary's text-prompt writing and generated-token reading (vocabulary scans made once, lazily)."""

    def __init__(self, vocab: Vocabulary):
        self._vocab = vocab

    @functools.cached_property
    def _special(self) -> dict[int, str]:
        """Tokens a special-parsing tokenizer finds by their text: id -> text."""
        found = {}
        for token in range(self._vocab.vocab_size):
            if llama_cpp.llama_vocab_get_attr(self._vocab._vocab, token) & _PARSED_AS_SPECIAL:
                text = self._vocab.token_text(token)
                if text:
                    found[token] = text
        return found

    @functools.cached_property
    def _special_texts(self) -> list[str]:
        return sorted(set(self._special.values()), key=len, reverse=True)

    @functools.cached_property
    def _byte_pieces(self) -> dict[bytes, int]:
        """Tokens whose bytes are no valid UTF-8 alone (parts of characters): bytes -> id."""
        found = {}
        for token in range(self._vocab.vocab_size):
            piece = self._vocab.piece(token)
            try:
                piece.decode("utf-8")
            except UnicodeDecodeError:
                found.setdefault(piece, token)
        return found

    @functools.cached_property
    def _longest_byte_piece(self) -> int:
        return max(map(len, self._byte_pieces), default=0)

    # ------------------------------------------------------------------ prompts

    def prompt_text(self, tokens: list[int]) -> str:
        """The text a special-parsing server tokenises back into `tokens`' special tokens and no others."""
        parts: list[str] = []
        plain = bytearray()
        for token in tokens:
            special = self._special.get(token)
            if special is None:
                plain += self._vocab.piece(token)
                continue
            parts.append(self._plain(bytes(plain)))
            plain.clear()
            parts.append(special)
        parts.append(self._plain(bytes(plain)))
        return "".join(parts)

    def _plain(self, data: bytes) -> str:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise SplitCharacter() from None
        for special in self._special_texts:
            if special in text:
                text = text.replace(special, special[:-1] + BREAK + special[-1])
        return text

    # ------------------------------------------------------------------ generated tokens

    def ids_for_texts(self, texts: list[str], whole: str) -> list[int]:
        """Token ids for generated tokens given as text, read along `whole`, the completion's text.

        The longest run of tokens that spells a prefix of `whole` and ends on
        a character boundary: generation cut inside a character keeps the
        tokens before it.
        """
        data = whole.encode("utf-8")
        best: list[int] = []
        path: list[int] = []

        def walk(index: int, at: int) -> bool:
            nonlocal best
            if len(path) > len(best) and _whole_characters(data[:at]):
                best = list(path)
            if index == len(texts):
                return _whole_characters(data[:at])
            for token, size in self._candidates(texts[index], data, at):
                path.append(token)
                if walk(index + 1, at + size):
                    return True
                path.pop()
            return False

        walk(0, 0)
        return best

    def _candidates(self, text: str, data: bytes, at: int):
        """(token, its byte count) that the server may have written as `text` at byte `at` of `data`."""
        rest = data[at:]
        if text:
            alone = self._vocab.tokenize_exactly(text.encode("utf-8"))
            if alone and len(alone) == 1 and rest.startswith(piece := self._vocab.piece(alone[0])):
                yield alone[0], len(piece)
        for size in range(min(len(rest), self._longest_byte_piece), 0, -1):  # the longest first: fewest guesses
            token = self._byte_pieces.get(rest[:size])
            if token is not None and rest[:size].decode("utf-8", errors="ignore") == text:
                yield token, size


def _whole_characters(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
