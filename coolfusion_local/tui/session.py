"""The conversation on screen and its link to the history store (no widgets here).

Everything the UI shows is held here in memory first, then saved: if saving
fails the chat goes on and the user gets one line saying so.
"""

from __future__ import annotations

import sqlite3

from ..engine.events import Message
from .store import ConversationMissing, Store, StoredMessage

NEW_TITLE = "New chat"


class ChatSession:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.conversation_id: int | None = None
        self.title = NEW_TITLE
        self.messages: list[StoredMessage] = []
        self._problems: list[str] = []
        self.detached = False  # the conversation on screen was deleted elsewhere: no longer saved

    # ------------------------------------------------------------ switching

    def new(self) -> None:
        """A blank chat; it is saved (and listed) once its first message is."""
        self.conversation_id = None
        self.title = NEW_TITLE
        self.messages = []
        self.detached = False

    def open(self, conversation_id: int) -> None:
        messages = self._guard(lambda: self.store.messages(conversation_id), "read that conversation")
        if messages is None:
            return
        self.conversation_id = conversation_id
        self.title = self._guard(lambda: self.store.conversation_title(conversation_id), "read its title") or NEW_TITLE
        self.messages = messages
        self.detached = False

    # ------------------------------------------------------------ changing

    def add(self, message: StoredMessage) -> None:
        """Keep `message` and save it now (finished messages are never held back)."""
        self.messages.append(message)
        if self.conversation_id is None:
            if message.role == "user":
                self.title = " ".join(message.content.split())[:60] or NEW_TITLE
            self.conversation_id = self._guard(lambda: self.store.create_conversation(self.title), "start a conversation")
            if self.conversation_id is None:
                return
        if self.detached:
            return
        try:
            self._guard(lambda: self.store.add_message(self.conversation_id, message, self.title), "save the message")
        except ConversationMissing as error:
            self.detached = True
            self._problems.append(
                f"Not saved: {error}. This chat stays on screen but is no longer saved; "
                "Ctrl+N starts a new chat that is."
            )

    def rename(self, conversation_id: int, title: str) -> None:
        self._guard(lambda: self.store.rename_conversation(conversation_id, title), "rename")
        if conversation_id == self.conversation_id:
            self.title = title

    def delete(self, conversation_id: int) -> None:
        self._guard(lambda: self.store.delete_conversation(conversation_id), "delete")
        if conversation_id == self.conversation_id:
            self.new()

    def clear(self) -> None:
        if self.conversation_id is not None:
            self._guard(lambda: self.store.clear_conversation(self.conversation_id), "clear")
        self.messages = []

    # ------------------------------------------------------------ reading

    def history(self, upto: int | None = None) -> list[Message]:
        """The turns sent to the models: every question and (partial) answer with text."""
        turns = self.messages if upto is None else self.messages[:upto]
        return [Message(m.role, m.content) for m in turns if m.content.strip()]

    def last_exchange(self) -> tuple[int, StoredMessage | None] | None:
        """(index of the last question, the answer after it or None); None if no question yet."""
        for i in range(len(self.messages) - 1, -1, -1):
            if self.messages[i].role == "user":
                after = self.messages[i + 1] if i + 1 < len(self.messages) else None
                return i, after
        return None

    def last_answer(self) -> StoredMessage | None:
        for message in reversed(self.messages):
            if message.role == "assistant" and message.content.strip():
                return message
        return None

    @property
    def saving(self) -> bool:
        """Whether new messages reach the history file."""
        return self.store.persistent and not self.detached

    def conversations(self):
        """The saved conversations for the sidebar (empty if the history cannot be read)."""
        return self._guard(self.store.list_conversations, "list the conversations") or []

    def take_notices(self) -> list[str]:
        notices = self.store.take_notices() + self._problems
        self._problems = []
        return notices

    def _guard(self, work, what: str):
        try:
            return work()
        except sqlite3.Error as error:
            self._problems.append(f"Could not {what} in the history database: {error}; the chat goes on.")
            return None
