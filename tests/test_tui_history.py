"""Conversations in the chat UI: resumed after a restart, renamed, deleted, exported, cleared,
and a history database that cannot be written never stops the chat.

UI behaviour with the scripted engine (it fuses nothing; see scripted_engine.py).
"""

from __future__ import annotations

import os
import sqlite3
import stat

from scripted_engine import ScriptedEngine
from tui_helpers import data_dir, idle, make_app, send, shown_words, visible_text, wait_until  # noqa: F401

from coolfusion_local.tui.store import DB_FILENAME, Store
from coolfusion_local.tui.screens.dialogs import Confirm, TextPrompt
from coolfusion_local.tui.widgets.conversation_list import ConversationItem
from coolfusion_local.tui.widgets.message_box import AnswerBox, ColouredText, UserMessage

ANSWER = "Paris is the capital of France."


async def ask(pilot, text: str) -> None:
    app = pilot.app
    before = len(app.chat.query(AnswerBox))
    await send(pilot, text)
    await wait_until(pilot, lambda: idle(app) and len(app.chat.query(AnswerBox)) == before + 1, what=f"answer to {text!r}")


async def dialog(pilot, kind):
    """Wait for a dialog of `kind` to be on screen and ready for keys."""
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, kind) and pilot.app.screen.query("Input, Button"))
    return pilot.app.screen


def titles(app) -> list[str]:
    return [item.summary.title for item in app.chat.query(ConversationItem)]


async def open_first_conversation(pilot) -> None:
    sidebar = pilot.app.chat.query_one("#sidebar")
    sidebar.focus()
    sidebar.index = 0
    await pilot.press("enter")


async def test_a_conversation_survives_a_restart_with_its_colours_and_continues():
    async with make_app(ScriptedEngine()).run_test(size=(140, 40)) as pilot:
        await ask(pilot, "Capital of France?")
        await ask(pilot, "Are you sure?")
        await pilot.press("ctrl+q")

    engine = ScriptedEngine()
    app = make_app(engine)
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_until(pilot, lambda: titles(app) == ["Capital of France?"], what="the saved chat listed")
        assert not app.chat.query(AnswerBox)  # a new chat until one is opened
        await open_first_conversation(pilot)
        await wait_until(pilot, lambda: len(app.chat.query(AnswerBox)) == 2)
        assert [u.message.content for u in app.chat.query(UserMessage)] == ["Capital of France?", "Are you sure?"]
        box = app.chat.query(AnswerBox).last()
        assert box.message.content == ANSWER and box.message.stats["segments"] == 4
        assert [s.winner for s in box.message.segments] == ["alpha", "beta", "alpha", "beta"]

        await pilot.press("ctrl+t")  # colours come from the saved winners
        assert box.query_one(ColouredText).display
        assert len({str(span.style) for span in box.query_one(ColouredText).render().spans}) >= 2

        await ask(pilot, "And Italy?")
        sent = [m.content for m in engine.calls[-1][1]]
        assert sent == ["Capital of France?", ANSWER, "Are you sure?", ANSWER, "And Italy?"]
    store = Store.open_default()
    [summary] = store.list_conversations()
    assert summary.message_count == 6


async def test_new_chat_rename_delete():
    app = make_app(ScriptedEngine())
    async with app.run_test(size=(140, 40)) as pilot:
        await ask(pilot, "First chat")
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert not app.chat.query(AnswerBox)
        await ask(pilot, "Second chat")
        assert titles(app) == ["Second chat", "First chat"]

        await pilot.press("f2")
        await dialog(pilot, TextPrompt)
        app.screen.query_one("Input").value = "Geography"
        await pilot.press("enter")
        await wait_until(pilot, lambda: titles(app) == ["Geography", "First chat"])
        assert app.chat.query_one("#log").border_title == "Geography"

        sidebar = app.chat.query_one("#sidebar")
        sidebar.focus()
        sidebar.index = 1
        await pilot.press("d")
        await dialog(pilot, Confirm)
        await pilot.press("y")
        await wait_until(pilot, lambda: titles(app) == ["Geography"])
        assert app.chat.query(AnswerBox)  # the open chat was not the deleted one
    assert [c.title for c in Store.open_default().list_conversations()] == ["Geography"]


async def test_export_to_markdown(tmp_path):
    app = make_app(ScriptedEngine())
    target = tmp_path / "export" / "france.md"
    target.parent.mkdir()
    async with app.run_test(size=(140, 40)) as pilot:
        await ask(pilot, "Capital of France?")
        app.chat.action_export_chat()
        await dialog(pilot, TextPrompt)
        assert app.screen.query_one("Input").value.endswith(".md")
        app.screen.query_one("Input").value = str(target)
        await pilot.press("enter")
        await wait_until(pilot, target.exists, what="the export file")
        text = target.read_text()
        assert text.startswith("# Capital of France?") and "## You (" in text and ANSWER in text

        app.chat.action_export_chat()  # a path that cannot be written: one line, no crash
        await dialog(pilot, TextPrompt)
        app.screen.query_one("Input").value = str(tmp_path / "missing-dir" / "x.md")
        await pilot.press("enter")
        await wait_until(pilot, lambda: any("Could not export" in n.message for n in app._notifications))


async def test_an_export_never_overwrites_without_asking_and_is_private(tmp_path):
    app = make_app(ScriptedEngine())
    target = tmp_path / "notes.md"
    target.write_text("my own notes\n")
    old_umask = os.umask(0o022)  # the usual default: new files world-readable
    try:
        async with app.run_test(size=(140, 40)) as pilot:
            await ask(pilot, "Capital of France?")
            for answer in ("n", "y"):
                app.chat.action_export_chat()
                await dialog(pilot, TextPrompt)
                app.screen.query_one("Input").value = str(target)
                await pilot.press("enter")
                confirm = await dialog(pilot, Confirm)
                assert str(target) in shown_words(confirm.query_one("Label"))
                await pilot.press(answer)
                await wait_until(pilot, lambda: not isinstance(app.screen, Confirm))
                if answer == "n":
                    assert target.read_text() == "my own notes\n"
            await wait_until(pilot, lambda: ANSWER in target.read_text(), what="the export to replace the file")
            assert stat.S_IMODE(target.stat().st_mode) == 0o600

            fresh = tmp_path / "fresh.md"
            app.chat.action_export_chat()
            await dialog(pilot, TextPrompt)
            app.screen.query_one("Input").value = str(fresh)
            await pilot.press("enter")
            await wait_until(pilot, fresh.exists, what="the new export")
            assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
            assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith((".md", ".tmp"))) == [
                "fresh.md", "notes.md"]  # no temporary file left behind

            app.chat.action_export_chat()  # a folder: one line, nothing written
            await dialog(pilot, TextPrompt)
            app.screen.query_one("Input").value = str(tmp_path)
            await pilot.press("enter")
            await wait_until(pilot, lambda: any("it is a folder" in n.message for n in app._notifications))
    finally:
        os.umask(old_umask)


async def test_ctrl_l_clears_the_chat_after_asking():
    app = make_app(ScriptedEngine())
    async with app.run_test(size=(140, 40)) as pilot:
        await ask(pilot, "Capital of France?")
        await pilot.press("ctrl+l")
        await dialog(pilot, Confirm)
        await pilot.press("n")
        await pilot.pause()
        assert app.chat.query(AnswerBox)
        await pilot.press("ctrl+l")
        await dialog(pilot, Confirm)
        await pilot.press("y")
        await wait_until(pilot, lambda: not app.chat.query(AnswerBox))
    store = Store.open_default()
    assert [c.message_count for c in store.list_conversations()] == [0]


async def test_an_unwritable_data_dir_keeps_the_chat_going_in_memory(data_dir):
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    data_dir.write_text("a file where the data folder should be")
    app = make_app(ScriptedEngine())
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_until(pilot, lambda: any("kept in memory" in n.message for n in app._notifications))
        assert "history not saved" in shown_words(app.chat.query_one("#status"))
        await ask(pilot, "Capital of France?")
        assert titles(app) == ["Capital of France?"]  # listed for this session


async def test_a_disk_that_fills_up_mid_chat_loses_nothing_on_screen():
    app = make_app(ScriptedEngine())
    async with app.run_test(size=(140, 40)) as pilot:
        await ask(pilot, "First")
        conn = app.session.store._conn
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        await ask(pilot, "x" * 20000)  # too big for the "full" disk
        await wait_until(pilot, lambda: any("continues in memory" in n.message for n in app._notifications))
        assert len(app.chat.query(AnswerBox)) == 2
        assert "history not saved" in shown_words(app.chat.query_one("#status"))
    # What was finished before the disk filled is on disk.
    [summary] = Store.open_default().list_conversations()
    assert summary.message_count == 2


async def test_a_chat_deleted_in_another_window_is_said_and_never_mixed_into_another():
    app = make_app(ScriptedEngine())
    async with app.run_test(size=(140, 40)) as pilot:
        await ask(pilot, "Capital of France?")
        shown = app.session.conversation_id
        other_window = Store.open_default()
        other_window.delete_conversation(shown)
        newer = other_window.create_conversation("the other window's new chat")
        await ask(pilot, "And of Italy?")
        await wait_until(pilot, lambda: any("no longer saved" in n.message for n in app._notifications))
        assert "history not saved" in shown_words(app.chat.query_one("#status"))
        assert len(app.chat.query(AnswerBox)) == 2  # the chat goes on, on screen
        await ask(pilot, "And of Spain?")
        assert sum("no longer saved" in n.message for n in app._notifications) == 1  # said once
        await pilot.press("ctrl+n")
        await ask(pilot, "A new chat")
        assert "history not saved" not in shown_words(app.chat.query_one("#status"))
    store = Store.open_default()
    assert store.messages(newer) == [] and store.messages(shown) == []
    assert [c.title for c in store.list_conversations()] == ["A new chat", "the other window's new chat"]


async def test_a_corrupt_database_is_moved_aside_with_a_notice(data_dir):
    data_dir.mkdir(parents=True)
    (data_dir / DB_FILENAME).write_bytes(b"garbage" * 1000)
    app = make_app(ScriptedEngine())
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_until(pilot, lambda: any("moved to" in n.message for n in app._notifications))
        await ask(pilot, "Fresh start?")
    assert list(data_dir.glob(f"{DB_FILENAME}.corrupt-*"))
    assert [c.title for c in Store.open_default().list_conversations()] == ["Fresh start?"]


async def test_two_app_instances_share_one_history():
    first, second = make_app(ScriptedEngine()), make_app(ScriptedEngine())
    async with first.run_test(size=(140, 40)) as one, second.run_test(size=(140, 40)) as two:
        await ask(one, "From window one")
        await ask(two, "From window two")
        await ask(one, "One again")
        await two.press("ctrl+n")  # refreshes the list from the shared file
        await wait_until(two, lambda: sorted(titles(second)) == ["From window one", "From window two"])
    store = Store.open_default()
    counts = {c.title: c.message_count for c in store.list_conversations()}
    assert counts == {"From window one": 4, "From window two": 2}
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
