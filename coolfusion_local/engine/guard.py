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
  either text goes on with a digit, cannot win: a weak partner's arithmetic
  is not worth the lead's.

Both are decided before any scoring decode, from rows the lead already has,
so a guarded round costs nothing; and adaptive mode skips asking partners
whenever the lead is sure at every token a candidate could part at.
"""

from __future__ import annotations

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


def parting_token(lead_text: bytes, lead_ends: Sequence[int], other_text: bytes) -> int:
    """The index of the lead's token where `other_text` parts from `lead_text`;
    len(lead_ends) when the lead's whole text is a prefix of the other (they part after it)."""
    common = common_prefix(lead_text, other_text)
    return next((i for i, end in enumerate(lead_ends) if end > common), len(lead_ends))


def _digit(byte: bytes) -> bool:
    return byte.isdigit()


def parts_in_number(before: bytes, lead_text: bytes, other_text: bytes) -> bool:
    """Whether the two texts part inside a number, or where either goes on with a digit.

    `before`: the shared text just before both. "12" vs "15" part after a
    digit; " 12" vs " twelve" part where the lead's text goes on with one.
    """
    common = common_prefix(lead_text, other_text)
    shared = before + lead_text[:common]
    return _digit(shared[-1:]) or _digit(lead_text[common : common + 1]) or _digit(other_text[common : common + 1])


@dataclass(frozen=True)
class Parting:
    """Where one candidate parts from the lead's proposal, and whether it may win there."""

    margin: float  # the lead's top-1 − top-2 probability at its token where they part
    in_number: bool
    allowed: bool
