"""Command-palette entries of the arena: start it, read its report, pick its pairing."""

from __future__ import annotations

from typing import Iterable

from textual.app import SystemCommand

from ..arena.pairings import all_pairings
from .plain_text import escaped


def arena_commands(app, chat) -> Iterable[SystemCommand]:
    yield SystemCommand(
        "Arena: blind A/B comparison",
        "Two systems answer each question, shown as A and B; vote which is better (F4)", chat.action_arena,
    )
    yield SystemCommand("Arena report", "Wins, ties, losses and win rates of your votes", chat.action_arena_report)
    for pairing in all_pairings(app.modes()):
        yield SystemCommand(  # the palette reads its entries as markup; a system names a model
            escaped(f"Arena pairing: {pairing.label}"), escaped(f"Compare {pairing.label} in the arena"),
            lambda pairing=pairing: chat.action_arena(pairing), discover=False,
        )
