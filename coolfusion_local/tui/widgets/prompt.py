"""The question box: Enter sends; Ctrl+J (or Shift+Enter, where the terminal reports it) adds a line.

A TextArea rather than an Input: Input keeps only the first line of a paste,
which silently drops most of a pasted code snippet.
"""

from __future__ import annotations

from textual import events
from textual.message import Message
from textual.widgets import TextArea


class PromptArea(TextArea):
    NEWLINE_KEYS = ("ctrl+j", "shift+enter")

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
        # Handled here, not as bindings: a binding's action runs a moment later, so
        # with fast typing (or keys arriving together) the new line landed after them.
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            text = self.text
            if text.strip():
                self.clear()  # now, so keys typed right after Enter start the next question
                self.post_message(self.Submitted(self, text))
            return
        if event.key in self.NEWLINE_KEYS:
            event.stop()
            event.prevent_default()
            result = self.replace("\n", *self.selection, maintain_selection_offset=False)
            self.move_cursor(result.end_location)
            return
        await super()._on_key(event)
