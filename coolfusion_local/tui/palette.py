"""Command-palette (Ctrl+P) entries: every action of the chat, findable by name."""

from __future__ import annotations

from typing import Iterable

from textual.app import SystemCommand

from ..engine.modes import FUSION_MODES
from .plain_text import escaped


def chat_commands(app, chat) -> Iterable[SystemCommand]:
    """`chat` is the ChatScreen; each entry names its key so the palette teaches the keys."""
    yield SystemCommand("New chat", "Start an empty conversation (Ctrl+N)", chat.action_new_chat)
    yield SystemCommand("Clear chat", "Remove every message of this chat (Ctrl+L)", chat.action_clear_chat)
    yield SystemCommand("Stop answer", "Stop the answer being written, keep the partial (Esc)", chat.action_stop)
    yield SystemCommand(
        "Colour by model", "Colour each segment by the model that won it (Ctrl+T)", chat.action_toggle_colours
    )
    yield SystemCommand(
        "Segment inspector", "Candidates and scores of each segment (Ctrl+S, F7/F8)", chat.action_toggle_inspector
    )
    yield SystemCommand(
        "Compare with each model alone", "Re-ask the last question of every model alone (Ctrl+R)", chat.action_compare
    )
    yield SystemCommand("Models", "Model details, which ones take part, fusion mode (Ctrl+O)", chat.action_models)
    yield SystemCommand("Next fusion mode", escaped(f"{' → '.join(FUSION_MODES)} → solo (F3)"), chat.action_cycle_mode)
    for mode in app.modes():
        yield SystemCommand(  # the palette reads its entries as markup; a mode names a model
            escaped(f"Mode: {mode}"), escaped(f"Answer with fusion mode {mode}"),
            lambda mode=mode: app.set_mode(mode), discover=False,
        )
    yield SystemCommand("Copy last answer", "Copy the last answer to the clipboard (Ctrl+Y)", chat.action_copy_answer)
    yield SystemCommand("Copy last code block", "Copy the last code block of the last answer", chat.action_copy_code)
    yield SystemCommand("Rename chat", "Give this chat a new title (F2)", chat.action_rename_chat)
    yield SystemCommand("Export chat", "Save this chat as a Markdown file", chat.action_export_chat)
    yield SystemCommand("Delete chat", "Delete this chat from the history", chat.action_delete_chat)
    yield SystemCommand("Conversation list", "Show or hide the list of chats (Ctrl+B)", chat.action_toggle_sidebar)
    yield SystemCommand("Help", "Every key (F1)", app.action_help)
