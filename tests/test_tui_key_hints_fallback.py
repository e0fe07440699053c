"""The key hints fall back to Textual's plain Footer when its private internals move (issue 29 point 7).

tui/widgets/key_hints.py reads `textual.widgets._footer.FooterKey` and its
`key_display`: a Textual release that renames them must not stop the chat from
starting. pyproject.toml bounds Textual below its next major version as well.
"""

from __future__ import annotations

import importlib
import sys
import types

import pytest
from scripted_engine import ScriptedEngine
from tui_helpers import data_dir, idle, make_app, send, wait_until  # noqa: F401
from textual.widgets import Footer

from coolfusion_local.tui.widgets import key_hints
from coolfusion_local.tui.widgets.message_box import AnswerBox


@pytest.fixture
def private_footer_gone(monkeypatch):
    """A Textual whose textual.widgets._footer no longer has FooterKey (the module reloaded against it)."""
    monkeypatch.setitem(sys.modules, "textual.widgets._footer", types.ModuleType("textual.widgets._footer"))
    importlib.reload(key_hints)
    yield
    monkeypatch.undo()
    importlib.reload(key_hints)


def _footer_keys(app) -> list:
    footer = app.chat.query_one(Footer)
    return [w for w in footer.query("*") if hasattr(w, "description") and w.display]


async def _chat_answers(app) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await send(pilot, "What is the capital of France?")
        await wait_until(pilot, lambda: idle(app) and app.chat.query(AnswerBox), what="the answer")
        await pilot.pause()
        described = {key.description for key in _footer_keys(app)}
        assert {"Quit", "Help", "Stop"} <= described  # the plain footer's hints, all of them
        return described


async def test_the_chat_starts_with_the_plain_footer_when_textuals_footer_key_is_gone(private_footer_gone):
    assert key_hints.FooterKey is None
    await _chat_answers(make_app(ScriptedEngine()))


async def test_the_chat_starts_with_the_plain_footer_when_a_private_attribute_is_gone(monkeypatch):
    fitted = await _chat_answers(make_app(ScriptedEngine()))

    def moved(key, compact):
        raise AttributeError("'FooterKey' object has no attribute 'key_display'")

    monkeypatch.setattr(key_hints, "hint_width", moved)
    plain = await _chat_answers(make_app(ScriptedEngine()))
    assert plain > fitted  # at 80 columns the plain footer lists every hint (clipped at the edge)
