"""What the chat screen does with whole conversations: open, start, clear, rename,
delete, export. A mixin of ChatScreen, kept apart so chat.py stays about answers.

Exports hold a person's conversation: they are written 0600, atomically, and an
existing file is only replaced once the user says so.
"""

from __future__ import annotations

import re
from pathlib import Path

from ...errors import describe_os_error
from ...files import replace_text
from ..widgets.conversation_list import ConversationList
from .dialogs import Confirm, TextPrompt


class ConversationActions:
    """Needs from its screen: session, busy(), show_conversation(), refresh_sidebar(), show_notices()."""

    async def on_conversation_list_action(self, event: ConversationList.Action) -> None:
        if event.verb == "open":
            if event.conversation_id == self.session.conversation_id or self.busy("switch chats"):
                return
            self.session.open(event.conversation_id)
            await self.show_conversation()
            self.query_one("#prompt").focus()
        elif event.verb == "rename":
            self.rename(event.conversation_id)
        elif event.verb == "delete":
            self.delete(event.conversation_id)
        elif event.verb == "export":
            self.export(event.conversation_id)
        self.show_notices()

    async def action_new_chat(self) -> None:
        if self.busy("start a new chat"):
            return
        self.session.new()
        await self.show_conversation()
        await self.refresh_sidebar()
        self.query_one("#prompt").focus()

    def action_clear_chat(self) -> None:
        if self.busy("clear the chat") or not self.session.messages:
            return

        async def answered(yes: bool | None) -> None:
            if yes:
                self.session.clear()
                await self.show_conversation()
                await self.refresh_sidebar()
                self.show_notices()

        self.app.push_screen(Confirm("Clear every message of this chat? This cannot be undone."), answered)

    def action_rename_chat(self) -> None:
        self.rename(self.session.conversation_id)

    def rename(self, conversation_id: int | None) -> None:
        current = self.session.title if conversation_id == self.session.conversation_id else ""
        if conversation_id is not None and not current:
            current = self.session.store.conversation_title(conversation_id) or ""

        async def answered(title: str | None) -> None:
            if not title:
                return
            if conversation_id is None:
                self.session.title = title  # saved with the first message
            else:
                self.session.rename(conversation_id, title)
            await self.refresh_sidebar()
            self.show_notices()

        self.app.push_screen(TextPrompt("Rename the chat:", current), answered)

    def delete(self, conversation_id: int | None) -> None:
        if conversation_id is None:
            return
        if conversation_id == self.session.conversation_id and self.busy("delete this chat"):
            return

        async def answered(yes: bool | None) -> None:
            if not yes:
                return
            current = conversation_id == self.session.conversation_id
            self.session.delete(conversation_id)
            if current:
                await self.show_conversation()
            await self.refresh_sidebar()
            self.show_notices()

        title = self.session.store.conversation_title(conversation_id) or "this chat"
        self.app.push_screen(Confirm(f"Delete “{title}”? This cannot be undone."), answered)

    def export(self, conversation_id: int | None) -> None:
        if conversation_id is None:
            self.notify("Nothing to export yet: ask something first.", severity="warning")
            return
        title = self.session.store.conversation_title(conversation_id) or "chat"
        slug = re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-").lower()[:40] or "chat"
        default = str(Path.cwd() / f"coolfusion-{conversation_id}-{slug}.md")

        def answered(path: str | None) -> None:
            if not path:
                return
            target = Path(path).expanduser()
            if target.is_dir():
                self.notify(f"Could not export to {target}: it is a folder; name a file in it", severity="error")
            elif target.exists():
                # Never overwrite without asking: it may be another chat's export, or anything else.
                self.app.push_screen(Confirm(f"{target} exists. Replace it?"),
                                     lambda yes: yes and self._write_export(conversation_id, target))
            else:
                self._write_export(conversation_id, target)

        self.app.push_screen(TextPrompt("Export the chat to this Markdown file:", default), answered)

    def _write_export(self, conversation_id: int, target: Path) -> None:
        """Write the export readable by its owner only (it is a conversation), whole or not at all."""
        try:
            replace_text(target, self.session.store.export_markdown(conversation_id), private=True)
        except OSError as error:
            self.notify(f"Could not export to {target}: {describe_os_error(error)}", severity="error")
            return
        self.notify(f"Exported to {target}")

    def action_export_chat(self) -> None:
        self.export(self.session.conversation_id)

    def action_delete_chat(self) -> None:
        self.delete(self.session.conversation_id)
