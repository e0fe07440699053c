"""The chat shows a load's wait (the AMX probe's test process, up to two minutes) as a line, not silence.

UI behaviour only, on the scripted engine; the real engine's event is checked in
test_cpu_extra_buffers.py::test_the_engine_reports_the_choice_with_every_local_model_and_notes_it_once.
"""

from __future__ import annotations

from scripted_engine import ScriptedEngine
from tui_helpers import data_dir, make_app, wait_until  # noqa: F401 - data_dir is an autouse fixture

WAIT = ("testing llama.cpp's AMX kernels on this CPU with small.gguf in a separate process first "
        "(once per llama.cpp build and CPU; it gives up after 120 s)")


def _status(app) -> str:
    return str(app.chat.query_one("#status").render())


async def test_the_status_bar_says_what_a_load_waits_for_until_loading_goes_on():
    engine = ScriptedEngine(hold_loads=True, waiting={"alpha": WAIT})
    app = make_app(engine)
    async with app.run_test(size=(240, 40)) as pilot:
        await wait_until(pilot, lambda: "alpha: testing llama.cpp's AMX kernels" in _status(app), what="the wait line")
        await pilot.pause(0.8)  # the load-progress poller ticks every 0.25 s with 0%: the line stays
        assert "alpha: testing llama.cpp's AMX kernels" in _status(app)
        assert any(WAIT in str(note.message) for note in app._notifications)  # and a notification, in full
        engine.release_loads.set()
        await wait_until(pilot, lambda: "testing llama.cpp" not in _status(app), what="the line gone after loading")
