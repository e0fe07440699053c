"""Compare view, models panel, a model that fails to load, help and the command palette.

UI behaviour with the scripted engine (it fuses nothing; see scripted_engine.py).
"""

from __future__ import annotations

from scripted_engine import ScriptedEngine
from tui_helpers import data_dir, idle, make_app, send, shown_words, visible_text, wait_until  # noqa: F401

from coolfusion_local.tui.model_facts import ModelFacts
from coolfusion_local.tui.screens.compare import CompareScreen
from coolfusion_local.tui.screens.help import HelpScreen
from coolfusion_local.tui.screens.models import ModelsScreen
from coolfusion_local.tui.widgets.message_box import AnswerBox


def state(app, name):
    return next(v.state for v in app.model_views if v.name == name)


async def test_compare_reasks_the_last_question_of_each_model_alone():
    engine = ScriptedEngine(segment_delay=0.01)
    app = make_app(engine)
    async with app.run_test(size=(140, 40)) as pilot:
        await send(pilot, "Capital of France?")
        await wait_until(pilot, lambda: idle(app) and app.chat.query(AnswerBox))
        await send(pilot, "And of Italy?")
        await wait_until(pilot, lambda: idle(app) and len(app.chat.query(AnswerBox)) == 2)

        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: isinstance(app.screen, CompareScreen), what="the compare view")
        screen = app.screen
        await wait_until(pilot, lambda: not screen.running, what="both solo answers")
        boxes = list(screen.query(AnswerBox))
        assert [b.border_title for b in boxes] == ["Fused (cool)", "alpha alone", "beta alone"]
        assert boxes[1].message.content == "alpha alone says hi."
        assert boxes[2].message.content == "beta alone says hi."
        assert all("tok/s" in shown_words(b.query_one(".answer-meta")) for b in boxes)
        assert "And of Italy?" in shown_words(screen.query_one("#compare-question"))

        await pilot.press("escape")  # nothing running any more: closes
        await wait_until(pilot, lambda: not isinstance(app.screen, CompareScreen))

    solo_calls = [(mode, [m.content for m in msgs]) for mode, msgs in engine.calls if mode.startswith("solo:")]
    history = ["Capital of France?", "Paris is the capital of France.", "And of Italy?"]
    assert solo_calls == [("solo:alpha", history), ("solo:beta", history)]


async def test_escape_in_compare_stops_the_solo_answers_then_closes():
    engine = ScriptedEngine()
    app = make_app(engine)
    async with app.run_test(size=(140, 40)) as pilot:
        await send(pilot, "Capital of France?")
        await wait_until(pilot, lambda: idle(app) and app.chat.query(AnswerBox))
        engine.pause_after = 1
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: isinstance(app.screen, CompareScreen))
        screen = app.screen
        await wait_until(pilot, lambda: list(screen.query(AnswerBox))[1].message.segments)
        await pilot.press("escape")
        await wait_until(pilot, lambda: not screen.running, what="the solo answers to stop")
        first, second = list(screen.query(AnswerBox))[1:]
        assert (first.message.content, first.message.stop_reason) == ("alpha ", "stopped")
        assert second.message.stop_reason == "stopped"  # queued, never started
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, CompareScreen))


async def test_compare_needs_a_question_first():
    app = make_app(ScriptedEngine())
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert not isinstance(app.screen, CompareScreen)
        assert any("Ask a question first" in n.message for n in app._notifications)


async def test_a_model_that_fails_to_load_shows_its_reason_and_the_others_answer():
    engine = ScriptedEngine(fail={"beta": "model 'beta': file is truncated; run coolfusion models pull beta"})
    app = make_app(engine)
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_until(pilot, lambda: state(app, "beta") == "failed" and state(app, "alpha") == "loaded")
        await pilot.pause()
        status = shown_words(app.chat.query_one("#status"))
        assert "alpha ✓" in status and "beta ✗ failed" in status
        assert any("beta failed to load: model 'beta': file is truncated" in n.message for n in app._notifications)

        await send(pilot, "Still there?")
        await wait_until(pilot, lambda: idle(app) and app.chat.query(AnswerBox))
        box = app.chat.query_one(AnswerBox)
        assert box.message.content == "Paris is the capital of France."
        assert {s.winner for s in box.message.segments} == {"alpha"}
        assert any("only alpha is loaded" in n.message for n in app._notifications)

        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: isinstance(app.screen, ModelsScreen))
        await pilot.press("down")  # highlight beta
        await pilot.pause()
        table_text = visible_text(app.screen.query_one("#models-table"))
        assert "FAILED" in table_text and "file is truncated" in table_text
        assert "Why it failed: model 'beta': file is truncated" in shown_words(app.screen.query_one("#model-detail"))


async def test_models_panel_shows_facts_switches_mode_and_membership(monkeypatch):
    facts = {
        "alpha": ModelFacts("qwen2", "Q4_K_M", "491 MB", "qwen2 (151k vocab)", "pypi:x", parameters=135_000_000),
        "beta": ModelFacts("llama", "Q4_1", "98 MB", "smollm (49k vocab)", "pypi:y", parameters=630_000_000),
    }
    monkeypatch.setattr("coolfusion_local.tui.screens.models.model_facts", lambda spec: facts.get(spec.name, ModelFacts()))
    engine = ScriptedEngine(names=("alpha", "beta", "gamma"), disabled=("gamma",))
    app = make_app(engine)
    async with app.run_test(size=(150, 40)) as pilot:
        await wait_until(pilot, lambda: state(app, "beta") == "loaded")
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: isinstance(app.screen, ModelsScreen))
        screen = app.screen
        table = screen.query_one("#models-table")
        await wait_until(pilot, lambda: "Q4_K_M" in shown_words(table), what="GGUF facts")
        text = visible_text(table)
        for expected in ("qwen2", "491 MB", "qwen2 (151k vocab)", "Q4_1", "smollm (49k vocab)", "CPU", "off",
                         "135M", "630M", "beta (lead)", "pypi:x", "pypi:y"):
            assert expected in text
        assert "alpha: from pypi:x" in shown_words(screen.query_one("#model-detail"))
        assert "coolfusion models add SOURCE" in shown_words(screen.query_one("#models-add-hint"))
        assert "alpha (lead)" not in text  # listed first, but beta has more parameters

        # Switch gamma on: it loads without a restart.
        await pilot.press("down", "down", "space")
        await wait_until(pilot, lambda: state(app, "gamma") == "loaded", what="gamma to load")
        # And beta off.
        await pilot.press("up", "space")
        await wait_until(pilot, lambda: state(app, "beta") == "disabled")
        await wait_until(pilot, lambda: "alpha (lead)" in shown_words(table), what="alpha to lead without beta")

        app.set_mode("solo:alpha")
        await wait_until(pilot, lambda: app.mode == "solo:alpha" and engine.mode == "solo:alpha")
        assert screen.query_one("#mode").value == "solo:alpha"
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, ModelsScreen))
        assert "mode solo:alpha" in shown_words(app.chat.query_one("#status"))


async def test_f3_cycles_the_fusion_mode():
    engine = ScriptedEngine()
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.mode == "cool")
        await pilot.press("f3")
        await wait_until(pilot, lambda: app.mode == "cool+r" and engine.mode == "cool+r")
        await pilot.press("f3", "f3")
        await wait_until(pilot, lambda: app.mode == "solo:alpha")


async def test_a_mode_the_engine_refuses_is_one_line_not_a_crash():
    class Picky(ScriptedEngine):
        @property
        def mode(self):
            return getattr(self, "_mode", "cool")

        @mode.setter
        def mode(self, value):
            from coolfusion_local.errors import CoolfusionError

            if value == "adaptive":
                raise CoolfusionError("adaptive mode needs two loaded models")
            self._mode = value

    app = make_app(Picky())
    async with app.run_test(size=(120, 40)) as pilot:
        app.set_mode("adaptive")
        await wait_until(pilot, lambda: any("adaptive mode needs" in n.message for n in app._notifications))
        assert app.mode == "cool" and app.is_running


async def test_help_screen_from_f1_and_question_mark():
    app = make_app(ScriptedEngine())
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        assert "Ctrl+R" in app.screen.query_one("Markdown").source
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)

        await pilot.press("?")  # typed into the focused input: a question may contain "?"
        assert app.chat.query_one("#prompt").value == "?"
        app.chat.query_one("#log").focus()
        await pilot.press("?")
        assert isinstance(app.screen, HelpScreen)


async def test_every_action_is_in_the_command_palette():
    app = make_app(ScriptedEngine())
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        titles = {command.title for command in app.get_system_commands(app.chat)}
        for title in (
            "New chat", "Clear chat", "Stop answer", "Colour by model", "Segment inspector",
            "Compare with each model alone", "Models", "Next fusion mode", "Mode: cool+r",
            "Mode: solo:beta", "Copy last answer", "Copy last code block", "Rename chat",
            "Export chat", "Delete chat", "Conversation list", "Help", "Quit",
        ):
            assert title in titles
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"compare")

        def offered():
            options = app.screen.query("CommandList")
            return options and any(
                "Compare with each model alone" in str(options.first().get_option_at_index(i).prompt)
                for i in range(options.first().option_count)
            )

        await wait_until(pilot, offered, what="the palette to offer Compare")
        await pilot.press("enter")  # runs it: no question yet, so it says so
        await wait_until(pilot, lambda: any("Ask a question first" in n.message for n in app._notifications))


async def test_an_engine_that_cannot_start_is_one_line_and_questions_still_end():
    from coolfusion_local.errors import CoolfusionError
    from coolfusion_local.tui.store import Store
    from coolfusion_local.tui.app import CoolfusionApp

    def factory():
        raise CoolfusionError("models.toml: no model named 'x'")

    app = CoolfusionApp(factory, Store.open_default(), model_names=["alpha"], mode="cool")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: any("no model named 'x'" in n.message for n in app._notifications))
        await send(pilot, "Hello?")
        await wait_until(pilot, lambda: idle(app) and app.chat.query(AnswerBox))
        box = app.chat.query_one(AnswerBox)
        assert box.message.error == "models.toml: no model named 'x'"
        assert "⚠ models.toml: no model named 'x'" in shown_words(box.query_one(".answer-meta"))
        assert box.has_class("-error")


async def test_a_crash_inside_generation_ends_the_answer_with_one_line():
    class Crashing(ScriptedEngine):
        def generate(self, messages, **kwargs):
            yield from list(super().generate(messages, **kwargs))[:2]
            raise RuntimeError("llama_decode returned -1")

    app = make_app(Crashing())
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "Hello?")
        await wait_until(pilot, lambda: idle(app) and app.chat.query(AnswerBox))
        box = app.chat.query_one(AnswerBox)
        assert box.message.content == "Paris is the "  # what was written is kept
        assert box.message.stop_reason == "error"
        assert "internal error: llama_decode returned -1" in box.message.error
        assert "\n" not in box.message.error
        await send(pilot, "Again?")  # the chat goes on
        await wait_until(pilot, lambda: idle(app) and len(app.chat.query(AnswerBox)) == 2)
