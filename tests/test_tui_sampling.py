"""The chat app samples with the chat defaults, shows them in the status bar, and the palette changes them."""

from __future__ import annotations

from scripted_engine import ScriptedEngine
from tui_helpers import data_dir, idle, loaded, make_app, send, wait_until  # noqa: F401  (data_dir: autouse fixture)

from coolfusion_local.engine.sampling import CHAT
from coolfusion_local.tui.widgets.message_box import STOP_LABELS


def status_line(app) -> str:
    return str(app.chat.query_one("#status").render())


def run_palette_entry(app, title: str) -> None:
    [command] = [c for c in app.get_system_commands(app.chat) if c.title == title]
    command.callback()


async def test_chat_samples_by_default_and_the_palette_switches_to_greedy_and_back():
    engine = ScriptedEngine(segment_delay=0.0)
    app = make_app(engine)
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_until(pilot, lambda: loaded(app), what="models loaded")
        assert "temp 0.8 top-k 40 top-p 0.95 min-p 0.05 rep 1.1/64" in status_line(app)
        await send(pilot, "Hello?")
        await wait_until(pilot, lambda: idle(app) and engine.calls, what="the first answer")
        assert engine.last_sampling == CHAT

        run_palette_entry(app, "Sampling: greedy")
        await wait_until(pilot, lambda: "greedy" in status_line(app), what="the status bar to say greedy")
        await send(pilot, "Again?")
        await wait_until(pilot, lambda: idle(app) and len(engine.calls) == 2, what="the second answer")
        assert engine.last_sampling.greedy

        run_palette_entry(app, "Sampling: temperature 1.2")
        await wait_until(pilot, lambda: "temp 1.2" in status_line(app), what="the status bar to say temp 1.2")
        run_palette_entry(app, "Sampling: as configured")
        await wait_until(pilot, lambda: "temp 0.8" in status_line(app), what="the configured values back")
        assert app.sampling == CHAT


def test_an_answer_the_loop_guard_ended_says_so():
    assert "repeat itself" in STOP_LABELS["loop"]
