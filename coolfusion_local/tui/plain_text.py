"""Text from people, models and files, on screen exactly as it is: never as markup.

Textual parses a plain `str` as content markup almost everywhere (Static,
Label, border titles, DataTable cells, notifications, palette entries), so a
question holding `[/b]` crashed the app and `[@click=app.quit]x` became a
button. Every widget of this UI that shows such text gets it through here:

- `plain(text)`: a `Content` that is `text`, character for character.
- `plain_cell(text)`: the same for Rich renderables (DataTable and Rich Table cells).
- `escaped(text)`: for the few APIs that insist on a markup string (palette entries).

Notifications need nothing: `CoolfusionApp.notify` never parses markup.
`tests/test_tui_markup.py` checks every call site in tui/ uses these.
"""

from __future__ import annotations

from rich.text import Text
from textual.content import Content
from textual.markup import escape


def plain(text: object) -> Content:
    return Content(str(text))


def plain_cell(text: object) -> Text:
    return Text(str(text), end="")


def escaped(text: object) -> str:
    return escape(str(text))
