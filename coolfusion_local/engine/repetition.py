"""Verbatim loops in an answer's prose, for the fused-level loop guard and the loop measurements.

A fused answer can loop although no model's own sampler sees it: the loop is
made of different models' segments, and each model's repetition penalty only
looks at tokens, not at who wrote them. So the fusion loop checks the fused
text itself.

The definition (`scripts/loop_table.py` measures with it): an answer loops
when some run of `LOOP_WORDS` consecutive prose words occurs `LOOP_TIMES`
times or more; the guard acts on runs of `GUARD_WORDS` (see below). Words are compared with case and the punctuation
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
# The guard acts on longer runs only: step-by-step working restates phrases
# ("Calculate the total number of boxes", "### Step 1: Calculate the total
# number of boxes needed", "Therefore, the total number of boxes") three times
# without looping; a real loop repeats whole sentences and soon has 10-word runs.
GUARD_WORDS = 10

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


def completes_loop(text: str, addition: str, length: int = GUARD_WORDS, times: int = LOOP_TIMES) -> bool:
    """Whether appending `addition` to `text` makes some run of words occur `times` times.

    Only runs that end in the added words count (ending in the last word of
    `text` too, which `addition` may extend): a loop already in `text` was
    judged when its own words came.
    """
    old = prose_words(text)
    words = prose_words(text + addition)
    if len(words) < length:
        return False
    # The exclusive end of the first run to check: after the old words, or
    # at the old last word when the addition changed it ("sym" + "phony").
    before = len(old) if words[: len(old)] != old else len(old) + 1
    first_end = max(length, before)
    runs = Counter(tuple(words[i : i + length]) for i in range(len(words) - length + 1))
    return any(runs[tuple(words[end - length : end])] >= times for end in range(first_end, len(words) + 1))
