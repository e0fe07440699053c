"""Verbatim loops in an answer's prose, for the fused-level loop guard and the loop measurements.

A fused answer can loop although no model's own sampler sees it: the loop is
made of different models' segments, and each model's repetition penalty only
looks at tokens, not at who wrote them. So the fusion loop checks the fused
text itself.

The definition (`scripts/loop_table.py` measures with it): an answer loops
when some run of `LOOP_WORDS` consecutive prose words occurs `LOOP_TIMES`
times or more; the guard acts on back-to-back copies only (see below). Words are compared with case and the punctuation
around them folded away ("Song," == "song"). Text that repeats by design is
not prose and is left out: fenced code blocks, table rows (lines with two or
more '|'), list and heading markers at the start of a line. Text without
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
_FOLD = string.punctuation + "“”‘’«»…—–"


def prose_words(text: str) -> list[str]:
    """The answer's prose as folded words, in order (see the module docstring)."""
    words: list[str] = []
    in_code = False
    for line in text.split("\n"):
        if _FENCE.match(line):
            in_code = not in_code
            continue
        if in_code or line.count("|") >= 2:
            continue
        for word in _MARKER.sub("", line).split():
            folded = word.strip(_FOLD).lower()
            if folded:
                words.append(folded)
    return words


def repeated_run(text: str, length: int = LOOP_WORDS, times: int = LOOP_TIMES) -> str | None:
    """The first run of `length` words that occurs `times` or more, else None."""
    words = prose_words(text)
    runs = Counter(tuple(words[i : i + length]) for i in range(len(words) - length + 1))
    for run, count in runs.items():
        if count >= times:
            return " ".join(run)
    return None


def _copy_ending_at(words: list[str], end: int, block: int, times: int) -> list[str] | None:
    """The stretch of `block`+ words that words[:end] ends with `times` back-to-back copies of, else None."""
    for size in range(block, end // times + 1):
        last = words[end - size : end]
        if all(words[end - (k + 1) * size : end - k * size] == last for k in range(1, times)):
            return last
    return None


def completes_loop(text: str, addition: str, block: int = GUARD_WORDS, times: int = LOOP_TIMES) -> bool:
    """Whether appending `addition` to `text` makes the prose end in `times` back-to-back copies
    of one stretch of `block` or more words.

    Only copies that end in the added words count (ending in the last word of
    `text` too, which `addition` may extend): a loop already in `text` was
    judged when its own words came.
    """
    old = prose_words(text)
    words = prose_words(text + addition)
    # The first end to check: the first added word, or the old last word
    # when the addition changed it ("sor" + "row").
    first_end = len(old) + 1 if words[: len(old)] == old else len(old)
    ends = range(max(first_end, 1), len(words) + 1)
    return any(_copy_ending_at(words, end, block, times) is not None for end in ends)


def verbatim_loop(text: str, block: int = GUARD_WORDS, times: int = LOOP_TIMES) -> str | None:
    """The first stretch of `block`+ words that occurs `times` times back to back, else None (what the guard stops)."""
    words = prose_words(text)
    for end in range(len(words) + 1):
        copy = _copy_ending_at(words, end, block, times)
        if copy is not None:
            return " ".join(copy)
    return None
