"""The line under the chat: each model's load state, the mode, sampling, the last answer's speed."""

from __future__ import annotations

from textual import events
from textual.content import Content
from textual.widgets import Static

from ..colours import UNKNOWN
from ..messages import ModelView

STATE_MARKS = {
    "loaded": "✓",
    "loading": "loading",
    "unloaded": "waiting",
    "failed": "✗ failed",
    "failing": "⚠ failing",  # loaded, but its failure ended the last answer it was in
    "disabled": "off",
}


class StatusBar(Static):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.models: list[ModelView] = []
        self.mode = ""
        self.sampling = ""
        self.speed = ""
        self.short_speed = ""  # what a narrow terminal has room for
        self.activity = ""
        self.saving = True

    def set_models(self, models: list[ModelView], mode: str) -> None:
        self.models, self.mode = list(models), mode
        self._render_line()

    def set_sampling(self, summary: str) -> None:
        self.sampling = summary
        self._render_line()

    def set_speed(self, stats: dict | None) -> None:
        if stats and stats.get("answer_tokens"):
            self.speed = (
                f"last answer {stats.get('tokens_per_second', 0.0):.1f} tok/s · "
                f"{stats.get('segments_per_second', 0.0):.1f} seg/s"
            )
            acceptance = (stats.get("draft") or {}).get("acceptance")
            if acceptance is not None:  # greedy answers with drafting (engine/drafting.py)
                self.speed += f" · drafts {100 * acceptance:.0f}% accepted"
            self.short_speed = f"{stats.get('tokens_per_second', 0.0):.1f} tok/s"
        self._render_line()

    def set_saving(self, saving: bool) -> None:
        self.saving = saving
        self._render_line()

    def set_activity(self, activity: str) -> None:
        self.activity = activity
        self._render_line()

    def on_resize(self, event: events.Resize) -> None:
        self._render_line()

    def _render_line(self) -> None:
        pieces: list = []
        for view in self.models:
            mark = STATE_MARKS.get(view.state, "?")
            style = {"failed": "$error", "failing": "$warning", "disabled": "dim", "unloaded": "dim"}.get(view.state, "")
            pieces.append(Content.styled(f"{view.name} {mark}", style or ""))
            pieces.append("  ")
        if self.mode:
            pieces.append(Content.from_markup("│ mode [b]$mode[/b]  ", mode=self.mode))
        # Most important first: what must show may still be cut from the right on a very narrow
        # terminal; the speed and the sampling show whole (the speed shorter if need be) or not at all.
        if not self.saving:
            pieces.append(Content.styled("│ history not saved  ", "$warning"))
        if self.activity:
            pieces.append(Content.styled(f"│ {self.activity}  ", "italic"))
        line = Content.assemble(*pieces)
        room = (self.size.width or self.app.size.width) - self.styles.gutter.width
        # "temp 0.8 top-k 40 …" shortened is "temp 0.8"; "greedy" stays.
        short_sampling = " ".join(self.sampling.split()[:2])
        choices = [
            [f"│ {form}  " for form in (speed, sampling) if form]
            for speed in (self.speed, self.short_speed, "") for sampling in (self.sampling, short_sampling, "")
        ]
        fitting = [c for c in choices if Content.assemble(line, *c).rstrip().cell_length <= room]
        # The most pieces shown, then the speed said in full before the sampling.
        best = max(fitting, key=len, default=[])  # the first of equals; none fits when the models alone fill the line
        self.update(Content.assemble(line, *best))


def legend(models: list[str], colours: dict[str, str]) -> Content:
    """'Colours: ■ qwen ■ smol …' for colour view."""
    parts: list = ["Winner colours: "]
    for name in models:
        parts.append((f"■ {name}", f"bold {colours.get(name, UNKNOWN)}"))
        parts.append("  ")
    return Content.assemble(*parts)
