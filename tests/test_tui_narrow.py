"""An 80x24 terminal: the conversation list steps aside (Ctrl+B brings it back), the answer takes
the width, and neither the key hints nor the status line is cut mid-word. 120x40 stays as it was.

UI behaviour with the scripted engine (it fuses nothing; see scripted_engine.py).
"""

from __future__ import annotations

from scripted_engine import ScriptedEngine
from tui_helpers import data_dir, idle, make_app, send, visible_text, wait_until  # noqa: F401
from textual.widgets._footer import FooterKey

from coolfusion_local.tui.widgets.message_box import AnswerBox


async def _answered(pilot) -> AnswerBox:
    app = pilot.app
    await send(pilot, "What is the capital of France?")
    await wait_until(pilot, lambda: idle(app) and app.chat.query(AnswerBox), what="the answer")
    await pilot.pause()
    [box] = app.chat.query(AnswerBox)
    return box


def _shown_hints(app) -> tuple[list[FooterKey], FooterKey]:
    keys = list(app.chat.query(FooterKey))
    [palette] = [k for k in keys if k.has_class("-command-palette")]
    return [k for k in keys if k is not palette and k.display], palette


def _assert_no_hint_is_cut(app) -> None:
    hints, palette = _shown_hints(app)
    width = app.size.width
    assert palette.region.right <= width
    for key in hints:
        assert key.region.right <= palette.region.x, f"{key.key_display} {key.description} runs under the palette key"
    for key in hints:  # (the palette key draws a border the helper cannot place)
        assert " ".join(visible_text(key).split()) == f"{key.key_display} {key.description}"


def _assert_status_is_whole(app) -> None:
    status = app.chat.query_one("#status")
    said = str(status.render()).rstrip()
    assert len(said) <= status.content_size.width, f"the status line is cut: {said!r}"
    assert visible_text(status).strip() == said.strip()


async def test_at_80_columns_the_list_steps_aside_and_the_answer_takes_the_width():
    app = make_app(ScriptedEngine())
    async with app.run_test(size=(80, 24)) as pilot:
        box = await _answered(pilot)
        sidebar = app.chat.query_one("#sidebar")
        assert not sidebar.display
        assert box.region.width >= 74  # of 80: the log's border and padding, a 1-column margin

        await pilot.press("ctrl+b")  # the list back, for picking a conversation
        await pilot.pause()
        assert sidebar.display and sidebar.region.width == 30
        await pilot.press("ctrl+b")
        await pilot.pause()
        assert not sidebar.display


async def test_at_80_columns_key_hints_and_status_are_whole():
    app = make_app(ScriptedEngine())
    async with app.run_test(size=(80, 24)) as pilot:
        await _answered(pilot)
        _assert_no_hint_is_cut(app)
        hints, _ = _shown_hints(app)
        described = {key.description for key in hints}
        # The keys a user needs first: leave, help (lists every key), stop, the hidden list.
        assert {"Quit", "Help", "Stop", "Chats"} <= described
        _assert_status_is_whole(app)
        status = visible_text(app.chat.query_one("#status"))
        assert "alpha ✓" in status and "mode cool" in status and "tok/s" in status


async def test_at_120_columns_the_layout_is_as_before():
    app = make_app(ScriptedEngine())
    async with app.run_test(size=(120, 40)) as pilot:
        box = await _answered(pilot)
        sidebar = app.chat.query_one("#sidebar")
        assert sidebar.display and sidebar.region.width == 30
        assert box.region.width == 80  # the log's 90 columns, less border, padding and the 6-column margin
        _assert_no_hint_is_cut(app)
        _assert_status_is_whole(app)
        assert "last answer" in visible_text(app.chat.query_one("#status"))


async def test_resizing_across_100_columns_hides_and_shows_the_list():
    app = make_app(ScriptedEngine())
    async with app.run_test(size=(120, 40)) as pilot:
        box = await _answered(pilot)
        sidebar = app.chat.query_one("#sidebar")
        await pilot.resize_terminal(80, 24)
        await wait_until(pilot, lambda: not sidebar.display, what="the list to step aside")
        await pilot.pause()
        assert box.region.width >= 74
        _assert_no_hint_is_cut(app)
        _assert_status_is_whole(app)
        await pilot.resize_terminal(120, 40)
        await wait_until(pilot, lambda: sidebar.display, what="the list to come back")
        await pilot.pause()
        assert box.region.width == 80
        _assert_no_hint_is_cut(app)


async def test_at_80_columns_long_model_names_fill_the_status_line_without_breaking_it():
    # The real default set while it loads: the three states alone are wider than 80 columns.
    engine = ScriptedEngine(names=("qwen-coder-0.5b", "smollm2-135m", "gemma3-270m"), hold_loads=True)
    app = make_app(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        status = app.chat.query_one("#status")
        await wait_until(pilot, lambda: "qwen-coder-0.5b" in visible_text(status), what="the status line")
        engine.release_loads.set()
        await wait_until(pilot, lambda: "gemma3-270m ✓" in visible_text(status), what="all loaded")
        await pilot.pause()
        _assert_no_hint_is_cut(app)
        _assert_status_is_whole(app)
