"""Where a candidate segment may end: a word boundary every source tokenizer agrees on.

Cool-Fusion compares candidates from models with different vocabularies, so a
segment must end where no model's tokens straddle the cut; otherwise one model
scores half a token and the rerank is biased. A byte position `p` of the
generated text is a *common boundary* when

1. it is a word boundary in the text: the character before `p` is not
   whitespace, and either the character at `p` is whitespace (the next word
   keeps its leading space, as GPT-2 BPE and SentencePiece both do) or one of
   the two characters is a wide character (CJK, kana, emoji), which are words
   of their own in scripts without spaces; never inside a UTF-8 sequence
   nor inside one visible character (a letter and its marks, an emoji
   sequence, a flag's pair of regional indicators, a Hangul syllable);
2. for every tokenizer T, ``T(text[:p])`` is a prefix of ``T(text)``: the
   tokenizer's own split is stable at `p` (no token crosses it).

The detector is pure: it only calls `tokenize(bytes) -> list[int]` on each
tokenizer (plain text: no BOS, special tokens not parsed), and memoises those
calls because the same windows are asked about again and again while a model
generates one token at a time.
"""

from __future__ import annotations

import unicodedata
from collections import OrderedDict
from typing import Iterable, Protocol, Sequence


class Tokenizer(Protocol):
    def tokenize(self, text: bytes) -> list[int]: ...


_JOINERS = {0x200D, 0xFE0E, 0xFE0F, 0x20E3}  # ZWJ, variation selectors, keycap


def _is_wide(cp: int) -> bool:
    """Characters that form words on their own (no spaces between them)."""
    return (
        0x2E80 <= cp <= 0x303F  # CJK radicals, punctuation
        or 0x3040 <= cp <= 0x30FF  # hiragana, katakana
        or 0x3100 <= cp <= 0x31FF
        or 0x3400 <= cp <= 0x4DBF
        or 0x4E00 <= cp <= 0x9FFF
        or 0xF900 <= cp <= 0xFAFF
        or 0xFF00 <= cp <= 0xFFEF  # fullwidth forms
        or 0x20000 <= cp <= 0x3FFFF
        or 0x2600 <= cp <= 0x27BF  # misc symbols, dingbats
        or 0x1F000 <= cp <= 0x1FAFF  # emoji and pictographs
    )


def _is_emoji_modifier(cp: int) -> bool:
    return 0x1F3FB <= cp <= 0x1F3FF or 0xE0020 <= cp <= 0xE007F


def _is_regional_indicator(cp: int) -> bool:
    return 0x1F1E6 <= cp <= 0x1F1FF  # two of them make one flag: 🇺🇸


# Hangul conjoining jamo: leading consonants, vowels, trailing consonants (UAX #29 rules GB6-GB8).
def _hangul_kind(cp: int) -> str:
    if 0x1100 <= cp <= 0x115F or 0xA960 <= cp <= 0xA97F:
        return "L"
    if 0x1160 <= cp <= 0x11A7 or 0xD7B0 <= cp <= 0xD7CF:
        return "V"
    if 0x11A8 <= cp <= 0x11FF or 0xD7CB <= cp <= 0xD7FF:
        return "T"
    if 0xAC00 <= cp <= 0xD7A3:
        return "LV" if (cp - 0xAC00) % 28 == 0 else "LVT"
    return ""


_HANGUL_JOINS = {("L", "L"), ("L", "V"), ("L", "LV"), ("L", "LVT"), ("LV", "V"), ("LV", "T"), ("V", "V"),
                 ("V", "T"), ("LVT", "T"), ("T", "T")}


def _same_cluster(before: str, after: str, flag_half_open: bool) -> bool:
    """Whether `after` continues the user-perceived character that `before` ends.

    A cut there would split one visible character in two: a letter from its
    accents (any mark, spacing or not: Devanagari vowel signs are marks with
    combining class 0), an emoji from its joiner, modifier or tag sequence, a
    flag's two regional indicators, Hangul jamo of one syllable, CR from LF.
    `flag_half_open`: `before` is the first regional indicator of a pair.
    """
    b, a = ord(before), ord(after)
    if a in _JOINERS or b == 0x200D or _is_emoji_modifier(a) or unicodedata.category(after).startswith("M"):
        return True
    if flag_half_open and _is_regional_indicator(a):
        return True
    if (_hangul_kind(b), _hangul_kind(a)) in _HANGUL_JOINS:
        return True
    return before == "\r" and after == "\n"


def _decode_chars(data: bytes) -> list[tuple[int, str, int]]:
    """(byte offset, character, byte width) for every complete UTF-8 character in `data`.

    Invalid bytes become U+FFFD of width 1 at their offset so a model that
    emits broken UTF-8 still gets boundaries (a real U+FFFD in the text is a
    character like any other, 3 bytes wide); an incomplete sequence at the
    very end is left out: more bytes may still complete it.
    """
    chars: list[tuple[int, str, int]] = []
    offset = 0
    end = len(data)
    while offset < end:
        lead = data[offset]
        if lead < 0x80:
            chars.append((offset, chr(lead), 1))
            offset += 1
            continue
        width = 2 if 0xC2 <= lead <= 0xDF else 3 if 0xE0 <= lead <= 0xEF else 4 if 0xF0 <= lead <= 0xF4 else 0
        if width == 0:
            chars.append((offset, "\ufffd", 1))
            offset += 1
            continue
        if offset + width > end:
            try:
                data[offset:end].decode("utf-8")
            except UnicodeDecodeError as error:
                if error.reason == "unexpected end of data":
                    break  # incomplete tail: wait for more bytes
            chars.append((offset, "\ufffd", 1))
            offset += 1
            continue
        try:
            chars.append((offset, data[offset : offset + width].decode("utf-8"), width))
            offset += width
        except UnicodeDecodeError:
            chars.append((offset, "\ufffd", 1))
            offset += 1
    return chars


def _cluster_starts(chars: list[tuple[int, str, int]]) -> Iterable[tuple[int, str, str]]:
    """(offset, character before, character at offset) wherever a new visible character starts."""
    flag_half_open = False
    for (_, before, _), (offset, after, _) in zip(chars, chars[1:]):
        flag_half_open = _is_regional_indicator(ord(before)) and not flag_half_open
        if not _same_cluster(before, after, flag_half_open):
            yield offset, before, after


def word_boundaries(data: bytes) -> Iterable[int]:
    """Byte offsets in `data` (0 < p < len) that are word boundaries in the text.

    Only offsets with a complete character after them are returned: whether
    a word ended can only be told once the next character is known.
    """
    for offset, before, after in _cluster_starts(_decode_chars(data)):
        if before.isspace():
            continue
        if after.isspace() or _is_wide(ord(before)) or _is_wide(ord(after)):
            yield offset


def last_char_boundary(data: bytes) -> int:
    """Length of the longest prefix of `data` that does not end inside a UTF-8 character."""
    chars = _decode_chars(data)
    if not chars:
        return 0
    offset, _, width = chars[-1]
    return offset + width


def forced_cut(data: bytes) -> int:
    """Where to cut `data` when no word boundary came: after its last whole character,
    unless that character is an emoji or half a flag, which often go on (a skin tone, a
    joiner, the flag's second half): then before it, when something comes before it."""
    chars = _decode_chars(data)
    if not chars:
        return 0
    offset, char, width = chars[-1]
    cp = ord(char)
    if _is_regional_indicator(cp) or 0x1F000 <= cp <= 0x1FAFF or 0x2600 <= cp <= 0x27BF or cp == 0x200D:
        starts = [start for start, _, _ in _cluster_starts(chars)]
        if starts:
            return starts[-1]
    return offset + width


class BoundaryDetector:
    """Finds the shortest segment ending on a boundary common to all tokenizers."""

    def __init__(self, tokenizers: Sequence[Tokenizer], cache_size: int = 8192):
        if not tokenizers:
            raise ValueError("a boundary needs at least one tokenizer")
        self._tokenizers = list(tokenizers)
        self._cache: OrderedDict[tuple[int, bytes], tuple[int, ...]] = OrderedDict()
        self._cache_size = cache_size

    def _tokens(self, index: int, text: bytes) -> tuple[int, ...]:
        key = (index, text)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        tokens = tuple(self._tokenizers[index].tokenize(text))
        self._cache[key] = tokens
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return tokens

    def is_stable(self, text: bytes, position: int) -> bool:
        """No tokenizer has a token crossing `position` of `text`."""
        for index in range(len(self._tokenizers)):
            whole = self._tokens(index, text)
            head = self._tokens(index, text[:position])
            if whole[: len(head)] != head:
                return False
        return True

    def first_boundary(
        self,
        generated: bytes,
        left: bytes = b"",
        allowed: set[int] | None = None,
    ) -> int | None:
        """Length of the shortest prefix of `generated` ending on a common boundary.

        `left` is the shared text just before `generated` (a word or two): it
        gives the tokenizers the context the segment will really be read in.
        `allowed`, when given, restricts the cut to these offsets in
        `generated` (the proposing model's own token ends, so its proposal is
        a whole number of its tokens). Returns None when there is none yet.
        """
        # Tokenizers are only shown whole characters: a UTF-8 sequence cut at
        # the end would be tokenised as invalid bytes.
        window = left + generated[: last_char_boundary(generated)]
        base = len(left)
        for position in word_boundaries(generated):
            if allowed is not None and position not in allowed:
                continue
            if self.is_stable(window, base + position):
                return position
        return None
