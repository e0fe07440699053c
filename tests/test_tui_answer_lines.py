"""An answer on screen: its line breaks as written, and a screen that is busy until the answer is done.

Scripted engine (see scripted_engine.py): these check the UI only.
"""

from __future__ import annotations

import asyncio
import time

from scripted_engine import ScriptedEngine
from tui_helpers import data_dir, idle, make_app, markdown_lines, send, wait_until  # noqa: F401  (data_dir: autouse fixture)

from coolfusion_local.tui.store import Store
from coolfusion_local.tui.widgets.message_box import AnswerBox
from coolfusion_local.tui.widgets.prompt import PromptArea

HAIKU = ["Autumn ", "rain falls soft\n", "On the roof ", "of the old house\n", "The kettle ", "answers"]
LINES = ["Autumn rain falls soft", "On the roof of the old house", "The kettle answers"]


def shown_lines(box: AnswerBox) -> list[str]:
    return markdown_lines(box.query_one("Markdown"))


async def test_a_haiku_shows_on_three_lines_streamed_and_reopened(tmp_path):
    app = make_app(ScriptedEngine(answer=HAIKU, segment_delay=0.01))
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "Write a haiku about autumn rain.")
        await wait_until(pilot, lambda: app.chat.query(AnswerBox) and "house" in app.chat.query_one(AnswerBox).message.content,
                         what="the second line to stream in")
        box = app.chat.query_one(AnswerBox)
        await wait_until(pilot, lambda: shown_lines(box)[:2] == LINES[:2], what="two lines while streaming")
        await wait_until(pilot, lambda: idle(app), what="the answer")
        assert box.message.content == "".join(HAIKU)  # what is saved is what the model wrote
        assert shown_lines(box) == LINES

    # Reopened from history: the same three lines.
    app = make_app(ScriptedEngine(answer=HAIKU))
    async with app.run_test(size=(120, 40)) as pilot:
        sidebar = app.chat.query_one("#sidebar")
        await wait_until(pilot, lambda: len(sidebar.children) == 1, what="the saved chat listed")
        sidebar.focus()
        sidebar.index = 0
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.chat.query(AnswerBox), what="the saved conversation")
        await pilot.pause()
        assert shown_lines(app.chat.query_one(AnswerBox)) == LINES


async def test_a_list_and_code_in_an_answer_still_render_as_markdown():
    answer = ["Steps:\n", "1. Boil water\n", "2. Add tea\n\n", "```python\n", "x = 1\n", "y = 2\n", "```\n"]
    app = make_app(ScriptedEngine(answer=answer))
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "Tea and code?")
        await wait_until(pilot, lambda: idle(app) and app.chat.query(AnswerBox), what="the answer")
        markdown = app.chat.query_one(AnswerBox).query_one("Markdown")
        assert len(markdown.query("MarkdownOrderedList MarkdownBullet")) == 2
        [fence] = markdown.query("MarkdownFence")
        assert fence.code.rstrip("\n") == "x = 1\ny = 2"  # no hard-break spaces inside code
        lines = markdown_lines(markdown)
        assert lines[:5] == ["Steps:", "1.", "Boil water", "2.", "Add tea"]


async def test_export_keeps_the_line_breaks(tmp_path):
    app = make_app(ScriptedEngine(answer=HAIKU))
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "Write a haiku about autumn rain.")
        await wait_until(pilot, lambda: idle(app) and app.chat.query(AnswerBox), what="the answer")
        conversation = app.chat.session.conversation_id
    store = Store.open_default()
    markdown = store.export_markdown(conversation)
    store.close()
    assert "Autumn rain falls soft  \nOn the roof of the old house  \nThe kettle answers" in markdown


async def test_the_screen_is_busy_from_the_question_until_the_answer_is_shown_saved_and_timed():
    """Whoever waits for idle (a second question, compare, a test) must find the whole answer.

    The question is posted as the prompt posts it, and the loop is watched at
    every step: idle beside an unfinished box was the cause of a flaky real-model test.
    """
    app = make_app(ScriptedEngine())
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "First question")
        await wait_until(pilot, lambda: idle(app) and app.chat.query(AnswerBox), what="the first answer")
        chat = app.chat
        chat.post_message(PromptArea.Submitted(chat.query_one(PromptArea), "Second question"))
        seen_busy = False
        deadline = time.monotonic() + 30  # a bound on a hang: a loaded machine takes many more loop turns
        while time.monotonic() < deadline:
            await asyncio.sleep(0)
            boxes = list(chat.query(AnswerBox))
            if not idle(app):
                seen_busy = True
                continue
            # Idle: every answer on screen is finished, saved and timed.
            assert all(not box.streaming and box.message.stop_reason for box in boxes)
            assert [m.content for m in chat.session.messages].count("Paris is the capital of France.") == len(boxes)
            assert "tok/s" in chat.status_bar.speed
            if seen_busy and len(boxes) == 2:
                break
        else:
            raise AssertionError("the second answer never finished")
