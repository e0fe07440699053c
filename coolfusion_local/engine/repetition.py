"""Verbatim loops in an answer's prose, for the fused-level loop guard and the loop measurements.

A fused answer can loop although no model's own sampler sees it: the loop is
made of different models' segments, and each model's repetition penalty only
looks at tokens, not at who wrote them. So the fusion loop checks the fused
text itself.

The definition (`scripts/loop_table.py` measures with it): an answer loops
when some run of `LOOP_WORDS` consecutive prose words occurs `LOOP_TIMES`
times or more; the guard acts on back-to-back copies only (see below). Words are compared with case and the punctuation
around them folded away ("Song," == "song"). Text that repeats by design is
not prose and is left out: fenced code blocks, code indented by four spaces
or a tab, table rows (lines with two or more '|'), comma-separated rows (see
`_is_data_row`), list and heading markers at the start of a line. Text without
spaces between words (Chinese, Japanese) has few "words", so loops in it go
unseen.
"""

from __future__ import annotations

import re
import string
from collections import Counter

LOOP_WORDS = 5
LOOP_TIMES = 3
# The guard acts on verbatim repetition only: the prose ending in LOOP_TIMES
# back-to-back copies of one stretch of at least GUARD_WORDS words (a loop with
# a shorter period is also one of a longer, "ha ha ha ..." included). Phrases
# that recur with other text between them are not a loop: step-by-step working
# restates "the number of books Mary has at the end of the year" three times,
# and an earlier guard on any 10-word run occurring 3 times cut 5 of 80 sampled
# GSM8K answers just before their result.
GUARD_WORDS = 5

_FENCE = re.compile(r"^\s*(```|~~~)")
_MARKER = re.compile(r"^\s*(?:[-*+>]|#{1,6}|\d{1,3}[.)])\s+")
# Where numbered list items start: a numbered list of identical items ("1. I
# will not talk in class." three times, numbered 1-2-3 or 1-1-1, both valid
# Markdown) counts what the user asked for, so it is not a loop. A bulleted
# one is how small models loop (SmolLM2 wrote "* 2-3 days of non-perishable
# food (...)" until its limit), and a cycle of several items is one too.
_NUMBERED_ITEM = re.compile(r"^\s*\d{1,3}[.)]\s+")
_INDENTED_CODE = re.compile(r"^(?: {4}|\t)")
_FOLD = string.punctuation + "“”‘’«»…—–"


def _is_data_row(line: str, neighbours: list[str]) -> bool:
    """A comma-separated row (CSV, a matrix as lists): two or more commas, short fields, no
    punctuation at its end, and a neighbouring line with as many commas. Verse ends its lines
    with punctuation ("A lullaby's song, a lullaby's song,") and stays prose, as does a single line."""
    commas = line.count(",")
    stripped = line.rstrip()
    if commas < 2 or stripped[-1:] in tuple(",.;:!?") or any(len(field.split()) > 4 for field in line.split(",")):
        return False
    return any(neighbour.count(",") == commas for neighbour in neighbours)


def _prose(text: str) -> tuple[list[str], list[int]]:
    """The answer's prose as folded words, in order, and the word index each numbered item starts at."""
    words: list[str] = []
    item_starts: list[int] = []
    in_code = False
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if _FENCE.match(line):
            in_code = not in_code
            continue
        neighbours = lines[max(index - 1, 0) : index] + lines[index + 1 : index + 2]
        if in_code or line.count("|") >= 2 or _is_data_row(line, neighbours):
            continue
        if _NUMBERED_ITEM.match(line):
            item_starts.append(len(words))
        elif _INDENTED_CODE.match(line):
            continue
        for word in _MARKER.sub("", line).split():
            folded = word.strip(_FOLD).lower()
            if folded:
                words.append(folded)
    return words, item_starts


def prose_words(text: str) -> list[str]:
    """The answer's prose as folded words, in order (see the module docstring)."""
    return _prose(text)[0]


def repeated_run(text: str, length: int = LOOP_WORDS, times: int = LOOP_TIMES) -> str | None:
    """The first run of `length` words that occurs `times` or more, else None."""
    words = prose_words(text)
    runs = Counter(tuple(words[i : i + length]) for i in range(len(words) - length + 1))
    for run, count in runs.items():
        if count >= times:
            return " ".join(run)
    return None


class _GuardView:
    """The prose as the guard reads it: words, how many of them have a letter, where numbered items start."""

    def __init__(self, text: str):
        self.words, self._item_starts = _prose(text)
        self._lettered = [0]  # prefix sums: words with a letter before each index
        for word in self.words:
            self._lettered.append(self._lettered[-1] + any(c.isalpha() for c in word))

    def copy_ending_at(self, end: int, block: int, times: int) -> list[str] | None:
        """The stretch of `block`+ words that words[:end] ends with `times` back-to-back copies of, else None.

        Each copy needs `block` words with a letter: numbers and symbols repeat
        by design ("1, 1, 1, ...", "1 0 1 0", rows of a zero matrix) yet still
        tell copies apart ("step 1 ..." is no copy of "step 2 ..."). Copies
        that are one numbered item over and over are a list, not a loop.
        """
        words = self.words
        for size in range(block, end // times + 1):
            if self._lettered[end] - self._lettered[end - size] < block:
                continue
            last = words[end - size : end]
            if all(words[end - (k + 1) * size : end - k * size] == last for k in range(1, times)):
                if not self._identical_items(end - times * size, end):
                    return last
        return None

    def _identical_items(self, start: int, end: int) -> bool:
        """Whether words[start:end] repeats with a period of exactly one numbered item."""
        region = self.words[start:end]
        period = next(p for p in range(1, len(region) + 1)
                      if all(region[i] == region[i + p] for i in range(len(region) - p)))
        starts = [s for s in self._item_starts if start <= s < end]
        return len(starts) >= 2 and all(b - a == period for a, b in zip(starts, starts[1:]))


def completes_loop(text: str, addition: str, block: int = GUARD_WORDS, times: int = LOOP_TIMES) -> bool:
    """Whether appending `addition` to `text` makes the prose end in `times` back-to-back copies
    of one stretch of `block` or more words.

    Only copies that end in the added words count (ending in the last word of
    `text` too, which `addition` may extend): a loop already in `text` was
    judged when its own words came.
    """
    old = prose_words(text)
    view = _GuardView(text + addition)
    words = view.words
    # The first end to check: the first added word, or the old last word
    # when the addition changed it ("sor" + "row").
    first_end = len(old) + 1 if words[: len(old)] == old else len(old)
    ends = range(max(first_end, 1), len(words) + 1)
    return any(view.copy_ending_at(end, block, times) is not None for end in ends)


def verbatim_loop(text: str, block: int = GUARD_WORDS, times: int = LOOP_TIMES) -> str | None:
    """The first stretch of `block`+ words that occurs `times` times back to back, else None (what the guard stops)."""
    view = _GuardView(text)
    for end in range(len(view.words) + 1):
        copy = view.copy_ending_at(end, block, times)
        if copy is not None:
            return " ".join(copy)
    return None
