"""How much of the answer may be shown: never a stop string, never half a character.

The answer grows segment by segment, and a stop string can span the join of
two segments ("... Final" + " answer:"). Text already streamed cannot be taken
back, so the tail that could still become a stop string is held back until
the next segment shows it does not; likewise bytes that do not yet make a
whole UTF-8 character. Every mode (cool, adaptive, solo and Cool+R's solo
answers) streams through this, so no stop text and no U+FFFD from a split
character ever reaches the screen, the history, --json or eval grading.
"""

from __future__ import annotations

from typing import Sequence

from .boundary import last_char_boundary


def _held_back(text: str, stops: Sequence[str]) -> int:
    """Length of the longest tail of `text` that is the start of a stop string."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:size]):
                longest = size
                break
    return longest


class ShownText:
    """The answer as the consumer sees it, advanced after every segment."""

    def __init__(self, stops: Sequence[str]):
        self.stops = [stop for stop in stops if stop]
        self.text = ""

    def advance(self, answer: bytes, final: bool) -> tuple[str, bool]:
        """(text newly safe to show, whether a stop string was reached).

        `final`: the answer ends with this segment whatever follows, so a
        tail held back for a stop string is shown after all. A split
        character at the very end is never shown: its other bytes will not come.
        """
        whole = answer[: last_char_boundary(answer)].decode("utf-8", errors="replace")
        # Held-back text means a stop string cannot start inside what was shown.
        found = [at for at in (whole.find(stop, max(0, len(self.text) - len(stop) + 1)) for stop in self.stops) if at >= 0]
        if found:
            visible = whole[: min(found)]
        elif final:
            visible = whole
        else:
            visible = whole[: len(whole) - _held_back(whole, self.stops)]
        fresh = visible[len(self.text) :]
        self.text += fresh
        return fresh, bool(found)
