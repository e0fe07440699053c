"""The key hints under the chat: Textual's Footer, but a hint is shown whole or not at all.

Footer lays its keys out in one row and clips whatever passes the right edge, so on
a narrow terminal the last hint reads "^s Segmen". Here the keys that fit are
chosen by importance (the rest still work, and F1 lists them all), and below
NARROW columns the compact style (less padding) makes room for more.
"""

from __future__ import annotations

from rich.cells import cell_len
from textual import events
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

NARROW = 100  # columns; below this the compact style

# Most important first; an action not listed (a focused widget's own keys) comes right after Stop.
IMPORTANCE = ["quit", "help", "stop", "toggle_sidebar", "models", "cycle_mode", "new_chat", "compare", "arena",
              "copy_answer", "toggle_inspector", "toggle_colours", "clear_chat"]
_UNLISTED = IMPORTANCE.index("stop") + 0.5
PALETTE_WIDTH = 12  # "▏^p palette " docked on the right, in both styles


def hint_width(key: FooterKey, compact: bool) -> int:
    """Cells one hint takes: Footer's CSS pads the key and the description, or, compact, adds a margin."""
    return cell_len(key.key_display) + cell_len(key.description) + (2 if compact else 3)


class KeyHints(Footer):
    def compose(self):
        width = self.app.size.width
        compact = width < NARROW
        self.set_reactive(Footer.compact, compact)  # the keys below bind to it
        self.set_class(compact, "-compact")
        widgets = list(super().compose())
        keys = [w for w in widgets if isinstance(w, FooterKey) and not w.has_class("-command-palette")]
        budget = width - (PALETTE_WIDTH if len(keys) < len(widgets) else 0)
        shown: set[int] = set()
        ranked = sorted(range(len(keys)), key=lambda i: (_rank(keys[i].action), i))
        for i in ranked:
            cost = hint_width(keys[i], compact)
            if cost <= budget:  # a narrower, less important hint may still fit after a wide one did not
                shown.add(i)
                budget -= cost
        hidden = {id(keys[i]) for i in range(len(keys)) if i not in shown}
        yield from (w for w in widgets if id(w) not in hidden)

    def on_resize(self, event: events.Resize) -> None:
        self.refresh(recompose=True)


def _rank(action: str) -> float:
    name = action.removeprefix("app.").removeprefix("screen.").split("(")[0]
    return IMPORTANCE.index(name) if name in IMPORTANCE else _UNLISTED
