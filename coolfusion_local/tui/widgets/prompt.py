"""The question box: Enter sends; Ctrl+J (or Shift+Enter, where the terminal reports it) adds a line.

A TextArea rather than an Input: Input keeps only the first line of a paste,
which silently drops most of a pasted code snippet.
"""

from __future__ import annotations

from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.widgets import TextArea


class PromptArea(TextArea):
    BINDINGS = [Binding("ctrl+j,shift+enter", "newline", "New line", show=False)]

    class Submitted(Message):
        def __init__(self, prompt: "PromptArea", value: str) -> None:
            super().__init__()
            self.prompt = prompt
            self.value = value

    def __init__(self, placeholder: str = "", *, id: str | None = None) -> None:
        super().__init__(
            id=id,
            soft_wrap=True,
            tab_behavior="focus",
            show_line_numbers=False,
            highlight_cursor_line=False,
            placeholder=placeholder,
        )

    @property
    def value(self) -> str:
        return self.text

    @value.setter
    def value(self, text: str) -> None:
        self.load_text(text)
        self.move_cursor(self.document.end)

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            self.post_message(self.Submitted(self, self.text))
            return
        await super()._on_key(event)

    def action_newline(self) -> None:
        self.insert("\n")
