"""Where a partner's segment may win at all: the lead-sure guard.

With a partner much weaker than the lead (SmolLM2 135M beside Qwen 0.5B),
the paper's average lets the partner decide the lead's near-ties, and the
lead's veto alone (scoring.py) still let it win where the lead was all but
certain: a one-token " months" beat the lead's longer segment by total NLL
where the lead's top-1 led its top-2 by 0.999 (GSM8K 3020; the study is in
docs/eval-and-bench.md).
Two rules keep the lead's text wherever the partner can only add noise:

- the lead is *sure* of a token when its top-1 probability beats its top-2 by
  at least `sure_margin`; a partner candidate that parts from the lead's
  proposal at such a token cannot win. Where the lead hesitates, the
  candidates are scored as before (AdaFuse arXiv 2601.06022 and Nudging
  arXiv 2410.09300 consult helpers only where the lead's top-1 is low);
- with `keep_numbers`, a candidate that parts inside a number, or where
  either text goes on with a number, cannot win: a weak partner's arithmetic
  is not worth the lead's. Numbers are any Unicode numeric characters
  (fullwidth and Arabic-Indic digits, CJK numerals, fractions, superscripts),
  and a sign (hyphen-minus, U+2212 minus, plus) before one; text that merely
  follows a number ("is 42" then "\\n" vs " pears") is not inside one.

Both are decided before any scoring decode, from rows the lead already has,
so a guarded round costs nothing; and adaptive mode skips asking partners
whenever the lead is sure at every token a candidate could part at.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Sequence

import numpy as np


def top_two_margin(row: np.ndarray) -> float:
    """p(top-1) − p(top-2) of one row of logits."""
    second, first = np.partition(row, -2)[-2:]
    # p1 - p2 = (e^l1 - e^l2) / sum(e^l): shifted by l1 so the largest term is 1.
    total = float(np.exp(row - first).sum())
    return (1.0 - float(np.exp(second - first))) / total


def token_ends(pieces: Sequence[bytes]) -> list[int]:
    """Byte offset where each token's text ends, for a list of token texts."""
    ends, at = [], 0
    for piece in pieces:
        at += len(piece)
        ends.append(at)
    return ends


def common_prefix(a: bytes | str, b: bytes | str) -> int:
    """How many leading bytes (or characters) `a` and `b` share."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def parting_point(a: bytes, b: bytes) -> int:
    """Where `a` and `b` part, moved back to the start of the UTF-8 character they part in
    ("٣" and "٤" share their first byte, yet part at the character)."""
    at = common_prefix(a, b)
    longer = a if len(a) > at else b
    while 0 < at < len(longer) and longer[at] & 0xC0 == 0x80:
        at -= 1
    return at


def parting_token(lead_text: bytes, lead_ends: Sequence[int], other_text: bytes) -> int:
    """The index of the lead's token where `other_text` parts from `lead_text`;
    len(lead_ends) when the lead's whole text is a prefix of the other (they part after it)."""
    common = parting_point(lead_text, other_text)
    return next((i for i, end in enumerate(lead_ends) if end > common), len(lead_ends))


SIGNS = "+-\u2212\u00b1\ufe63\uff0b\uff0d"  # a sign before a digit starts a number ("-2" vs "−2")
# Characters that sit inside a number between digits: "3.5", "3,000", "1/2", "12:30", "٣٫٥".
INSIDE = ".,/:\u066b\u066c\uff0e\uff0c"


def is_numeric(char: str) -> bool:
    """Any character Unicode gives a numeric value: ASCII, fullwidth and Arabic-Indic digits,
    CJK numerals, vulgar fractions, superscripts."""
    return unicodedata.numeric(char, None) is not None


def _starts_number(text: str) -> bool:
    return bool(text) and (is_numeric(text[0]) or (text[0] in SIGNS and len(text) > 1 and is_numeric(text[1])))


def parts_in_number(before: bytes, lead_text: bytes, other_text: bytes) -> bool:
    """Whether the two texts part inside a number, or where either goes on with a number.

    `before`: the shared text just before both (its first bytes may be half a
    character). "12" vs "15" part after a digit; " 12" vs " twelve" part
    where the lead's text goes on with one; "3." vs "3," part where a number
    may go on. "42" then "\\n" vs " pears" part after a number, not inside one.
    """
    at = parting_point(lead_text, other_text)
    shared = (before + lead_text[:at]).decode("utf-8", errors="ignore")
    lead_next = lead_text[at:].decode("utf-8", errors="replace")
    other_next = other_text[at:].decode("utf-8", errors="replace")
    if _starts_number(lead_next) or _starts_number(other_next):
        return True
    after_digit = bool(shared) and is_numeric(shared[-1])
    return after_digit and any(text[:1] and text[0] in INSIDE for text in (lead_next, other_next))


@dataclass(frozen=True)
class Parting:
    """Where one candidate parts from the lead's proposal, and whether it may win there."""

    margin: float  # the lead's top-1 − top-2 probability at its token where they part
    in_number: bool
    allowed: bool
