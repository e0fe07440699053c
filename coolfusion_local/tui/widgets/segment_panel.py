"""Side panel: what every model proposed for one segment, and how each was scored."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from ..store import StoredSegment
from ..colours import UNKNOWN
from ..plain_text import plain_cell
from .message_box import mean_nll, perplexity

DECISIONS = {
    "agreed": "every model proposed the same text",
    "confident": "one model was confident enough (adaptive mode)",
    "sure": "the lead kept its own: it was sure where the others part from it",
    "number": "the lead kept its own: the others part from it inside a number",
    "scored": "cross-scored: lowest average perplexity won",
    "vetoed": "the lead model kept its own: the others' first tokens alone were too unlikely for it",
    "forced": "no common word boundary in reach; forced",
    "solo": "a single model",
}


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def model_label(model: str, colours: dict[str, str], *, bold: bool) -> Text:
    """'■ name' in the model's colour."""
    label = Text("■ ", style=colours.get(model, UNKNOWN))
    label.append(model, style="bold" if bold else "")
    return label


def render_segment(segment: StoredSegment, total: int, colours: dict[str, str]) -> Group:
    """The inspector's content for one segment (also handy in tests)."""
    head = Text()
    head.append(f"Segment {segment.index + 1} of {total}\n", style="bold")
    head.append("won by ")
    head.append(segment.winner, style=f"bold {colours.get(segment.winner, UNKNOWN)}")
    why = DECISIONS.get(segment.decision, segment.decision)
    if why:
        head.append(f"\n{why}", style="dim")

    chosen = Text("\nchosen: ", style="dim")
    chosen.append(repr(segment.text))

    candidates = Table(title="Candidates", title_justify="left", expand=True, show_edge=False)
    candidates.add_column("model", no_wrap=True)
    candidates.add_column("proposed")
    candidates.add_column("NLL", justify="right")
    candidates.add_column("ppl", justify="right")
    proposals = segment.candidates or {segment.winner: segment.text}
    for model, text in proposals.items():
        nll = mean_nll(segment, model)
        candidates.add_row(model_label(model, colours, bold=model == segment.winner), plain_cell(repr(text)),
                           _fmt(nll), _fmt(perplexity(nll)))

    parts = [head, chosen, Text(""), candidates]
    if segment.scores:
        proposers = list(proposals)
        matrix = Table(
            title="Mean NLL (row: scorer, column: proposer)",
            title_justify="left",
            expand=True,
            show_edge=False,
        )
        matrix.add_column("scorer", no_wrap=True)
        for proposer in proposers:
            matrix.add_column(plain_cell(proposer), justify="right")
        for scorer, row in segment.scores.items():
            matrix.add_row(plain_cell(scorer), *[_fmt(row.get(p)) for p in proposers])
        parts += [Text(""), matrix]
    return Group(*parts)


class SegmentPanel(VerticalScroll):
    """Shows the selected segment; empty-state help otherwise."""

    def compose(self):
        yield Static(
            "Select a segment: F7/F8 step through the last answer, or click one in colour view (Ctrl+T).",
            id="segment-detail",
        )

    def show(self, segment: StoredSegment | None, total: int, colours: dict[str, str]) -> None:
        detail = self.query_one("#segment-detail", Static)
        if segment is None:
            detail.update("No segment data for this answer.")
        else:
            detail.update(render_segment(segment, total, colours))
