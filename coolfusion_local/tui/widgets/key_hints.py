"""The key hints under the chat: Textual's Footer, but a hint is shown whole or not at all.

Footer lays its keys out in one row and clips whatever passes the right edge, so on
a narrow terminal the last hint reads "^s Segmen". Here the keys that fit are
chosen by importance (the rest still work, and F1 lists them all), and below
NARROW columns the compact style (less padding) makes room for more.

Choosing needs Textual's footer internals (`FooterKey` from the private
`textual.widgets._footer`, its `key_display`, the `-command-palette` class).
pyproject.toml bounds Textual below its next major version, and a release that
moves them anyway gets the plain Footer (hints clipped at the edge) instead of
a chat that cannot start.
"""

from __future__ import annotations

from rich.cells import cell_len
from textual import events
from textual.widgets import Footer

try:
    from textual.widgets._footer import FooterKey
except ImportError:  # a Textual that moved it: the plain Footer
    FooterKey = None

NARROW = 100  # columns; below this the compact style

# Most important first; an action not listed (a focused widget's own keys) comes right after Stop.
IMPORTANCE = ["quit", "help", "stop", "toggle_sidebar", "models", "cycle_mode", "new_chat", "compare", "arena",
              "copy_answer", "toggle_inspector", "toggle_colours", "clear_chat"]
_UNLISTED = IMPORTANCE.index("stop") + 0.5
PALETTE_WIDTH = 12  # "▏^p palette " docked on the right, in both styles


def hint_width(key: "FooterKey", compact: bool) -> int:
    """Cells one hint takes: Footer's CSS pads the key and the description, or, compact, adds a margin."""
    return cell_len(key.key_display) + cell_len(key.description) + (2 if compact else 3)


class KeyHints(Footer):
    def compose(self):
        if FooterKey is None:
            yield from super().compose()
            return
        try:
            widgets, hidden = self._fitted()
        except AttributeError:  # Textual's footer internals changed: the plain Footer
            yield from super().compose()
            return
        yield from (w for w in widgets if id(w) not in hidden)

    def _fitted(self) -> tuple[list, set[int]]:
        """Footer's widgets, and the ids of the hints that do not fit."""
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
        return widgets, {id(keys[i]) for i in range(len(keys)) if i not in shown}

    def on_resize(self, event: events.Resize) -> None:
        self.refresh(recompose=True)


def _rank(action: str) -> float:
    name = action.removeprefix("app.").removeprefix("screen.").split("(")[0]
    return IMPORTANCE.index(name) if name in IMPORTANCE else _UNLISTED
