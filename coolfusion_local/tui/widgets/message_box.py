"""One turn on screen: the user's question, or an answer streamed segment by segment.

An answer keeps its `StoredMessage` (text, segments with winners, candidates and
scores): the same record is shown, inspected, coloured and saved.
"""

from __future__ import annotations

import math
from urllib.parse import urlsplit

from textual.color import Color
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.style import Style
from textual.widgets import Markdown, Static

from ..line_breaks import hard_line_breaks
from ..store import StoredMessage, StoredSegment
from ..colours import UNKNOWN
from ..plain_text import plain

WEB_SCHEMES = ("http", "https")

STOP_LABELS = {
    "stopped": "⏹ stopped",
    "max_tokens": "reached the length limit",
    "context_full": "context window full",
    "loop": "⟳ ended: it began to repeat itself verbatim",
    "stop_string": "",
    "eos": "",
}


def describe_stats(stats: dict | None) -> str:
    """'12 segments · 8.1 tok/s · 3.0 seg/s' from GenerationStats.as_dict()."""
    if not stats:
        return ""
    parts = []
    if stats.get("segments"):
        parts.append(f"{stats['segments']} segments")
    if stats.get("answer_tokens"):
        parts.append(f"{stats.get('tokens_per_second', 0.0):.1f} tok/s")
        parts.append(f"{stats.get('segments_per_second', 0.0):.1f} seg/s")
    acceptance = (stats.get("draft") or {}).get("acceptance")
    if acceptance is not None:  # greedy answers with drafting (engine/drafting.py)
        parts.append(f"drafts {100 * acceptance:.0f}% accepted")
    if stats.get("seconds"):
        parts.append(f"{stats['seconds']:.1f} s")
    return " · ".join(parts)


class UserMessage(Static):
    """A question, shown as typed (no Markdown: what you typed is what was sent)."""

    def __init__(self, message: StoredMessage) -> None:
        super().__init__(Content(message.content), classes="user-message")
        self.message = message
        self.border_title = "You"


class ColouredText(Static):
    """The answer as its segments, each in its winner's colour; click one to inspect it."""

    class Clicked(Message):
        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index

    def show(self, segments: list[StoredSegment], colours: dict[str, str], selected: int | None) -> None:
        parts = []
        for seg in segments:
            style = Style.from_meta({"@click": f"select_segment({seg.index})"})
            style += Style(foreground=Color.parse(colours.get(seg.winner, UNKNOWN)))
            if seg.index == selected:
                style += Style(reverse=True)
            parts.append((seg.text, style))
        self.update(Content.assemble(*parts) if parts else Content(""))

    def action_select_segment(self, index: int) -> None:
        self.post_message(self.Clicked(index))


class AnswerBox(Vertical):
    """A fused (or solo) answer; streams while `streaming`, then shows its outcome."""

    class SegmentSelected(Message):
        def __init__(self, box: "AnswerBox", index: int | None) -> None:
            super().__init__()
            self.box = box
            self.index = index

    def __init__(
        self,
        message: StoredMessage,
        colours: dict[str, str],
        *,
        title: str = "Answer",
        coloured: bool = False,
        streaming: bool = False,
        classes: str = "",
    ) -> None:
        super().__init__(classes=f"answer {classes}".strip())
        self.message = message
        self.colours = colours
        self.coloured = coloured
        self.streaming = streaming
        self.selected: int | None = None
        self.status = "waiting for the models…" if streaming else ""
        self.border_title = plain(title)
        self._stream = None
        self._streamed = ""  # the Markdown the stream has been given so far (line breaks made hard)

    def compose(self):
        yield Markdown(hard_line_breaks(self.message.content), classes="answer-text", open_links=False)
        yield ColouredText(classes="answer-coloured")
        yield Static(classes="answer-meta")

    def on_mount(self) -> None:
        if self.streaming:
            self._stream = Markdown.get_stream(self.query_one(Markdown))
        self._apply_view()
        self._show_meta()

    def on_markdown_link_clicked(self, event: Markdown.LinkClicked) -> None:
        """Only web links open: a model's answer must not launch file: or app-specific handlers."""
        event.stop()
        if urlsplit(event.href).scheme.lower() in WEB_SCHEMES:
            self.app.open_url(event.href)
        else:
            self.notify(f"Not opened: {event.href} (only http and https links open from an answer)",
                        severity="warning")

    # ------------------------------------------------------------ streaming

    async def add_segment(self, segment: StoredSegment) -> None:
        self.message.segments.append(segment)
        self.message.content += segment.text
        self.status = "thinking…" if self.status != "stopping…" else self.status
        await self._write_stream()
        if self.coloured:
            self._show_coloured()
        self._show_meta()

    async def add_text(self, text: str) -> None:
        """Plain streamed text without segment data (solo answers in Cool+R)."""
        self.message.content += text
        await self._write_stream()
        self._show_meta()

    async def _write_stream(self) -> None:
        """Give the Markdown stream what the answer gained, line breaks as written.

        hard_line_breaks is prefix-stable, so the new Markdown extends what the
        stream already has.
        """
        if self._stream is None:
            return
        markdown = hard_line_breaks(self.message.content, streaming=True)
        if markdown.startswith(self._streamed) and len(markdown) > len(self._streamed):
            await self._stream.write(markdown[len(self._streamed):])
            self._streamed = markdown

    def set_status(self, status: str) -> None:
        self.status = status
        if self.is_mounted:  # else on_mount shows it
            self._show_meta()

    async def finish(self, text: str, stop_reason: str, stats: dict | None, error: str | None) -> None:
        """The last word: the final text (Cool+R may replace the draft), why it ended, speed."""
        self.message.content = text
        self.message.stop_reason = stop_reason
        self.message.stats = stats
        self.message.error = error
        self.streaming = False
        self.status = ""
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None
        # One full render of the final text: the stream may have split Markdown oddly.
        await self.query_one(Markdown).update(hard_line_breaks(text))
        self._apply_view()
        self._show_meta()

    # ------------------------------------------------------------ colours and selection

    def set_coloured(self, coloured: bool) -> None:
        self.coloured = coloured
        self._apply_view()
        self._show_meta()

    def select(self, index: int | None) -> None:
        self.selected = index
        if self.coloured:
            self._show_coloured()

    def on_coloured_text_clicked(self, event: ColouredText.Clicked) -> None:
        event.stop()
        self.post_message(self.SegmentSelected(self, event.index))

    def _apply_view(self) -> None:
        has_segments = bool(self.message.segments)
        show_colours = self.coloured and has_segments
        self.query_one(Markdown).display = not show_colours
        self.query_one(ColouredText).display = show_colours
        if show_colours:
            self._show_coloured()

    def _show_coloured(self) -> None:
        self.query_one(ColouredText).show(self.message.segments, self.colours, self.selected)

    def _show_meta(self) -> None:
        message = self.message
        parts = []
        if self.status:
            parts.append(self.status)
        label = STOP_LABELS.get(message.stop_reason or "", message.stop_reason or "")
        if message.error:
            label = f"⚠ {message.error}"
        if label:
            parts.append(label)
        if message.mode:
            parts.append(message.mode)
        stats = describe_stats(message.stats)
        if stats:
            parts.append(stats)
        elif self.streaming and message.segments:
            parts.append(f"{len(message.segments)} segments")
        chosen = (message.stats or {}).get("rerank_chosen")
        if chosen and chosen != "fused":
            parts.append(f"Cool+R kept {chosen}'s own answer")
        joined = "".join(seg.text for seg in message.segments)
        if self.coloured and message.segments and joined.strip() != message.content.strip():
            parts.append("colours show the fused draft")
        meta = self.query_one(".answer-meta", Static)
        meta.update(Content(" · ".join(parts)))
        meta.display = bool(parts)
        self.set_class(message.stop_reason == "stopped", "-stopped")
        self.set_class(bool(message.error), "-error")


def mean_nll(segment: StoredSegment, proposer: str) -> float | None:
    """The proposer's candidate's NLL averaged over every scorer that scored it."""
    values = [row[proposer] for row in segment.scores.values() if proposer in row]
    return sum(values) / len(values) if values else None


def perplexity(nll: float | None) -> float | None:
    if nll is None:
        return None
    return math.exp(min(nll, 50.0))
