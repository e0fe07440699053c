"""The two answers of a blind comparison, drawn alike until the vote.

Before the vote both panels have the same frame, the same title form ("A", "B"),
the same Markdown rendering and no line under the text: nothing that tells a
system apart (no names, colours, speeds, segment counts or stop reasons). The
vote reveals each panel's system, its stats, and which answer the conversation
goes on from.
"""

from __future__ import annotations

from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Markdown, Static

from ...arena.comparisons import Answer
from ..line_breaks import hard_line_breaks
from ..plain_text import plain
from ..widgets.message_box import STOP_LABELS, describe_stats


class ArenaPanel(Vertical):
    """One side (A or B) of a comparison."""

    def __init__(self, side: str) -> None:
        super().__init__(classes="arena-panel")
        self.side = side
        self.border_title = plain(side)

    def compose(self):
        yield Markdown("", classes="arena-text", open_links=False)
        yield Static(classes="arena-meta")

    async def show_blind(self, answer: Answer | None) -> None:
        self.border_title = plain(self.side)
        self.remove_class("-kept", "-other")
        await self.query_one(Markdown).update(hard_line_breaks(answer.text if answer else ""))
        meta = self.query_one(".arena-meta", Static)
        meta.update("")
        meta.display = False

    def reveal(self, system: str, answer: Answer | None, kept: bool) -> None:
        self.border_title = plain(f"{self.side} · {system}")
        self.set_class(kept, "-kept")
        self.set_class(not kept, "-other")
        parts = []
        if answer is not None:
            if answer.error:
                parts.append(f"⚠ {answer.error}")
            label = STOP_LABELS.get(answer.stop_reason, answer.stop_reason)
            if label:
                parts.append(label)
            stats = describe_stats(answer.stats)
            if stats:
                parts.append(stats)
        if kept:
            parts.append("the conversation goes on from this answer")
        meta = self.query_one(".arena-meta", Static)
        meta.update(Content(" · ".join(parts)))
        meta.display = bool(parts)
