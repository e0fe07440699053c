"""The arena report on a screen: the same table as `coolfusion arena report`."""

from __future__ import annotations

import sqlite3

from textual.binding import Binding
from textual.containers import ScrollableContainer
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, Static

from ...arena.comparisons import ComparisonLog
from ...arena.report import build_report, format_report


class ArenaReportScreen(Screen):
    CSS_PATH = "arena.tcss"
    BINDINGS = [Binding("escape,q,r", "close", "Close")]

    def compose(self):
        with ScrollableContainer(id="arena-report"):  # scrolls sideways too: the table is never wrapped
            yield Static(id="arena-report-text")
        yield Footer()

    def on_mount(self) -> None:
        try:
            text = format_report(build_report(ComparisonLog(self.app.session.store).all()))
        except sqlite3.Error as error:
            text = f"Could not read the comparisons from the history database: {error}"
        # Content, not markup: pairings name models, and a name may hold brackets.
        self.query_one("#arena-report-text", Static).update(Content(text))
        self.query_one("#arena-report").focus()

    def action_close(self) -> None:
        self.dismiss()
