"""The sidebar: saved conversations, newest first."""

from __future__ import annotations

import time

from textual.binding import Binding
from textual.content import Content
from textual.message import Message
from textual.widgets import Label, ListItem, ListView

from ..store import ConversationSummary


def _when(timestamp: float) -> str:
    if time.strftime("%Y%m%d", time.localtime(timestamp)) == time.strftime("%Y%m%d"):
        return time.strftime("%H:%M", time.localtime(timestamp))
    return time.strftime("%d %b", time.localtime(timestamp))


class ConversationItem(ListItem):
    def __init__(self, summary: ConversationSummary) -> None:
        super().__init__(Label(Content.assemble(
            summary.title, ("\n" + f"{_when(summary.updated_at)} · {summary.message_count} messages", "dim")
        )))
        self.summary = summary


class ConversationList(ListView):
    """Enter opens; r renames, d / Delete deletes, e exports the highlighted conversation."""

    BINDINGS = [
        Binding("r", "act('rename')", "Rename"),
        Binding("d,delete", "act('delete')", "Delete"),
        Binding("e", "act('export')", "Export"),
    ]

    class Action(Message):
        """The user asked to rename/delete/export/open a conversation from the list."""

        def __init__(self, verb: str, conversation_id: int) -> None:
            super().__init__()
            self.verb = verb
            self.conversation_id = conversation_id

    async def show(self, summaries: list[ConversationSummary], current: int | None) -> None:
        await self.clear()
        items = [ConversationItem(s) for s in summaries]
        if items:
            await self.extend(items)
        for i, item in enumerate(items):
            if item.summary.id == current:
                self.index = i
                break

    def _highlighted_id(self) -> int | None:
        item = self.highlighted_child
        return item.summary.id if isinstance(item, ConversationItem) else None

    def action_act(self, verb: str) -> None:
        conversation_id = self._highlighted_id()
        if conversation_id is not None:
            self.post_message(self.Action(verb, conversation_id))

    def on_list_view_selected(self, event: ListView.Selected) -> None:
        event.stop()
        if isinstance(event.item, ConversationItem):
            self.post_message(self.Action("open", event.item.summary.id))
