"""The chat screen with a scripted engine: asking, streaming, stopping, colours, history.

These check UI behaviour only; the scripted engine fuses nothing (see
scripted_engine.py). test_tui_models.py runs the real engine.
"""

from __future__ import annotations

import threading

from scripted_engine import ScriptedEngine
from tui_helpers import data_dir, idle, loaded, make_app, send, shown_words, visible_text, wait_until  # noqa: F401  (data_dir: autouse fixture)

from coolfusion_local.tui.store import Store
from coolfusion_local.tui.widgets.message_box import AnswerBox, ColouredText, UserMessage
from coolfusion_local.tui.widgets.segment_panel import SegmentPanel

ANSWER = "Paris is the capital of France."


def stored_messages():
    store = Store.open_default()
    try:
        return [m for c in store.list_conversations() for m in store.messages(c.id)]
    finally:
        store.close()


async def test_enter_sends_and_the_answer_streams_in_and_is_saved():
    engine = ScriptedEngine(segment_delay=0.01)
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: loaded(app), what="models loaded")
        await send(pilot, "What is the capital of France?", type_it=True)
        await wait_until(pilot, lambda: app.chat.query(AnswerBox), what="an answer box")
        await wait_until(pilot, lambda: idle(app), what="the answer to finish")

        [question] = app.chat.query(UserMessage)
        assert question.message.content == "What is the capital of France?"
        [box] = app.chat.query(AnswerBox)
        assert box.message.content == ANSWER
        assert [s.winner for s in box.message.segments] == ["alpha", "beta", "alpha", "beta"]
        assert "Paris is the capital" in box.query_one("Markdown").source
        assert app.chat.query_one("#prompt").value == ""
        status = str(app.chat.query_one("#status").render())
        assert "tok/s" in status and "seg/s" in status and "alpha ✓" in status and "mode cool" in status

    # Every engine call ran on one thread, never the UI's.
    assert len(engine.threads) == 1 and threading.main_thread().ident not in engine.threads
    user, answer = stored_messages()
    assert (user.role, answer.role, answer.content, answer.stop_reason) == ("user", "assistant", ANSWER, "eos")


async def test_partial_answer_is_on_screen_while_it_is_written():
    engine = ScriptedEngine(pause_after=2)
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "Capital of France?")
        await wait_until(pilot, lambda: app.chat.query(AnswerBox) and len(app.chat.query_one(AnswerBox).message.segments) == 2)
        box = app.chat.query_one(AnswerBox)
        await wait_until(pilot, lambda: "Paris is the" in box.query_one("Markdown").source, what="partial Markdown")
        assert box.streaming and app.chat.pending is not None
        engine.resume.set()
        await wait_until(pilot, lambda: idle(app))
        assert box.message.content == ANSWER


async def test_escape_stops_the_answer_and_keeps_the_partial():
    engine = ScriptedEngine(pause_after=2)
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "Capital of France?")
        await wait_until(pilot, lambda: app.chat.query(AnswerBox) and len(app.chat.query_one(AnswerBox).message.segments) == 2)
        await pilot.press("escape")
        await wait_until(pilot, lambda: idle(app), what="the stop")
        box = app.chat.query_one(AnswerBox)
        assert box.message.content == "Paris is the "
        assert box.message.stop_reason == "stopped"
        assert box.has_class("-stopped")
        assert "stopped" in str(box.query_one(".answer-meta").render())
    assert [(m.content, m.stop_reason) for m in stored_messages()][1] == ("Paris is the ", "stopped")


async def test_quitting_mid_answer_stops_it_and_saves_the_partial():
    engine = ScriptedEngine(pause_after=1)
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "Capital of France?")
        await wait_until(pilot, lambda: app.chat.query(AnswerBox) and app.chat.query_one(AnswerBox).message.segments)
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: not app.is_running, what="the app to exit")
    user, answer = stored_messages()
    assert (answer.content, answer.stop_reason) == ("Paris ", "stopped")
    assert app.runner.close(timeout=5) and engine.closed


async def test_ctrl_c_quits_too():
    app = make_app(ScriptedEngine())
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("ctrl+c")
        await wait_until(pilot, lambda: not app.is_running, what="the app to exit")


async def test_colour_view_legend_and_segment_inspector():
    engine = ScriptedEngine()
    app = make_app(engine)
    async with app.run_test(size=(140, 40)) as pilot:
        await send(pilot, "Capital of France?")
        await wait_until(pilot, lambda: idle(app) and app.chat.query(AnswerBox))
        box = app.chat.query_one(AnswerBox)
        coloured = box.query_one(ColouredText)
        assert not coloured.display

        await pilot.press("ctrl+t")
        assert coloured.display and not box.query_one("Markdown").display
        legend = app.chat.query_one("#legend")
        assert legend.display and "alpha" in str(legend.render()) and "beta" in str(legend.render())
        spans = coloured.render().spans
        colours = {str(span.style) for span in spans}
        assert len(colours) >= 2  # two winners, two colours

        await pilot.press("f8")  # first segment of the last answer
        panel = app.chat.query_one(SegmentPanel)
        assert panel.display
        await pilot.pause()
        detail = shown_words(panel.query_one("#segment-detail"))
        assert "Segment 1 of 4" in detail and "alpha" in detail
        await pilot.press("f8")
        await pilot.pause()
        detail = shown_words(panel.query_one("#segment-detail"))
        assert "Segment 2 of 4" in detail and "won by" in detail and "<alpha 1>" in detail

        await pilot.press("ctrl+t")
        assert not coloured.display and box.query_one("Markdown").display


async def test_clicking_a_coloured_segment_inspects_it():
    app = make_app(ScriptedEngine())
    async with app.run_test(size=(140, 40)) as pilot:
        await send(pilot, "Capital of France?")
        await wait_until(pilot, lambda: idle(app) and app.chat.query(AnswerBox))
        await pilot.press("ctrl+t")
        await pilot.pause()
        coloured = app.chat.query_one(ColouredText)
        await pilot.click(coloured, offset=(8, 0))  # inside "is the "
        await wait_until(pilot, lambda: app.chat.inspected is not None, what="a selected segment")
        assert app.chat.inspected[1] == 1


async def test_each_turn_sends_the_whole_conversation():
    engine = ScriptedEngine()
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "First question")
        await wait_until(pilot, lambda: idle(app) and app.chat.query(AnswerBox))
        await send(pilot, "Second question")
        await wait_until(pilot, lambda: idle(app) and len(app.chat.query(AnswerBox)) == 2)
    history = [(m.role, m.content) for m in engine.calls[-1][1]]
    assert history == [("user", "First question"), ("assistant", ANSWER), ("user", "Second question")]


async def test_a_question_asked_while_models_load_waits_and_the_ui_stays_live():
    # Loading lasts until the test says so: a fixed load time ran out on a busy machine before the checks.
    engine = ScriptedEngine(hold_loads=True)
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "Are you there?")
        await wait_until(pilot, lambda: app.chat.query(AnswerBox))
        assert not loaded(app)
        await pilot.press("f1")  # the UI answers keys while the engine thread is busy
        assert type(app.screen).__name__ == "HelpScreen"
        await pilot.press("escape")
        await wait_until(pilot, lambda: "loading" in str(app.chat.query_one("#status").render()), what="loading shown")
        assert not loaded(app) and app.chat.pending is not None
        engine.release_loads.set()
        await wait_until(pilot, lambda: idle(app), what="the answer after loading")
        assert app.chat.query_one(AnswerBox).message.content == ANSWER


async def test_copy_last_answer_and_code_block():
    code_answer = ["Use this:\n\n", "```python\nprint('hi')\n```\n"]
    app = make_app(ScriptedEngine(answer=code_answer))
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "code please")
        await wait_until(pilot, lambda: idle(app) and app.chat.query(AnswerBox))
        await pilot.press("ctrl+y")
        assert app.clipboard == "".join(code_answer)
        app.chat.action_copy_code()
        assert app.clipboard == "print('hi')\n"


async def test_cool_r_shows_the_reranked_answer_and_says_whose_it_is():
    from coolfusion_local.engine.events import AnswerDone, AnswerReranked, SoloAnswerStarted, SoloTextDelta

    class Reranking(ScriptedEngine):
        def generate(self, messages, **kwargs):
            for event in super().generate(messages, **kwargs):
                if isinstance(event, AnswerDone):
                    yield SoloAnswerStarted("beta")
                    yield SoloTextDelta("beta", "Paris, France.")
                    yield AnswerReranked("beta", "Paris, France.", {}, {"fused": event.text, "beta": "Paris, France."})
                    event.stats.mode = "cool+r"
                    yield AnswerDone("Paris, France.", "eos", event.stats)
                else:
                    yield event

    app = make_app(Reranking(), mode="cool+r")
    async with app.run_test(size=(140, 40)) as pilot:
        await send(pilot, "Capital of France?")
        await wait_until(pilot, lambda: idle(app) and app.chat.query(AnswerBox))
        box = app.chat.query_one(AnswerBox)
        assert box.message.content == "Paris, France." and box.message.mode == "cool+r"
        assert "Paris, France." in box.query_one("Markdown").source
        await pilot.press("ctrl+t")
        await pilot.pause()
        meta = shown_words(box.query_one(".answer-meta"))
        assert "Cool+R kept beta's own answer" in meta and "colours show the fused draft" in meta
    [_, saved] = stored_messages()
    assert saved.content == "Paris, France." and saved.stats["rerank_chosen"] == "beta"


async def test_a_member_whose_server_failed_shows_as_failing_until_an_answer_ends_well():
    from coolfusion_local.engine.events import AnswerDone
    from coolfusion_local.tui.screens.models import ModelsScreen

    reason = "model 'beta' (http://gpu-box:8000/v1): connection refused; is the server running?"

    class ServerDiesOnce(ScriptedEngine):
        failures = 1

        def generate(self, messages, **kwargs):
            for event in super().generate(messages, **kwargs):
                if isinstance(event, AnswerDone) and self.failures:
                    self.failures -= 1
                    yield AnswerDone(event.text, "error", event.stats, reason, failed_model="beta")
                else:
                    yield event

    app = make_app(ServerDiesOnce())
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_until(pilot, lambda: loaded(app), what="models loaded")
        await send(pilot, "Capital of France?")
        await wait_until(pilot, lambda: idle(app) and app.chat.query(AnswerBox))
        status = app.chat.query_one("#status")
        await wait_until(pilot, lambda: "beta ⚠ failing" in shown_words(status), what="beta marked")
        assert "alpha ✓" in shown_words(status)
        assert app.chat.query_one(AnswerBox).message.content == ANSWER  # the partial text is kept
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: isinstance(app.screen, ModelsScreen))
        await pilot.press("down")  # highlight beta
        await pilot.pause()
        detail = shown_words(app.screen.query_one("#model-detail"))
        assert "FAILING" in visible_text(app.screen.query_one("#models-table")) and "connection refused" in detail
        await pilot.press("escape")
        await send(pilot, "And of Italy?")
        await wait_until(pilot, lambda: idle(app) and len(app.chat.query(AnswerBox)) == 2)
        await wait_until(pilot, lambda: "beta ✓" in shown_words(status), what="beta healed")


async def test_ctrl_j_adds_a_line_and_a_pasted_snippet_keeps_every_line():
    from textual import events

    engine = ScriptedEngine()
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        prompt = app.chat.query_one("#prompt")
        await pilot.press(*"Fix", "ctrl+j", *"this:", "ctrl+j")
        app.post_message(events.Paste("def f(x):\n    return x +\n"))  # as a terminal delivers it
        await wait_until(pilot, lambda: "return x +" in prompt.value, what="the paste")
        await pilot.press("enter")
        await wait_until(pilot, lambda: idle(app) and app.chat.query(AnswerBox))
    [question] = [m.content for m in engine.calls[-1][1]]
    assert question == "Fix\nthis:\ndef f(x):\n    return x +"


async def test_enter_while_an_answer_is_written_keeps_the_new_question_in_the_box():
    engine = ScriptedEngine(pause_after=1)
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "First?")
        await wait_until(pilot, lambda: app.chat.query(AnswerBox) and app.chat.query_one(AnswerBox).message.segments)
        await send(pilot, "Second?")
        await pilot.pause()
        assert app.chat.query_one("#prompt").value == "Second?"
        assert any("still being written" in n.message for n in app._notifications)
        engine.resume.set()
        await wait_until(pilot, lambda: idle(app))
        assert len(app.chat.query(AnswerBox)) == 1


def test_a_file_system_error_in_an_engine_job_is_one_line_not_an_internal_error():
    from coolfusion_local.tui.runner import EngineRunner

    posted = []
    runner = EngineRunner(lambda: object(), posted.append)
    runner.start()

    def job(engine):
        raise OSError(28, "No space left on device", "/cache/models/x.gguf")

    runner.submit(job)
    runner.close(timeout=10)
    assert [message.text for message in posted] == ["No space left on device: /cache/models/x.gguf"]


async def test_the_models_panel_says_whether_llama_cpp_s_extra_cpu_buffers_are_in_use_and_why():
    from dataclasses import replace

    from coolfusion_local.engine.events import ModelLoaded
    from coolfusion_local.tui.screens.models import ModelsScreen

    choice = ("off (llama.cpp's AMX kernels crash on this CPU (llama.cpp #20824; the probe died of SIGSEGV); "
              "running without them)")

    class AmxEngine(ScriptedEngine):
        def load(self):
            for event in super().load():
                if isinstance(event, ModelLoaded):
                    event = replace(event, cpu_extra_buffers=choice)
                    self._status[event.model].info = event
                yield event

    app = make_app(AmxEngine())
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_until(pilot, lambda: loaded(app), what="models loaded")
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: isinstance(app.screen, ModelsScreen))
        await pilot.pause()
        detail = shown_words(app.screen.query_one("#model-detail"))
        assert f"llama.cpp extra CPU buffer types (AMX, repacking): {choice}" in detail
