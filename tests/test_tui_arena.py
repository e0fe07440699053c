"""The arena screen's behaviour with a scripted engine: asking, voting, changing a vote, skipping,
the conversation going on from the kept answer, and pending comparisons across a restart.

The scripted engine fuses nothing (see scripted_engine.py); test_tui_arena_models.py checks the
blind view with the real models.
"""

from __future__ import annotations

from scripted_engine import ScriptedEngine
from tui_helpers import data_dir, make_app, visible_text, wait_until  # noqa: F401  (data_dir: autouse fixture)

from coolfusion_local.arena.comparisons import Answer, Comparison, ComparisonLog
from coolfusion_local.arena.pairings import Pairing
from coolfusion_local.engine.events import Message
from coolfusion_local.tui.store import Store
from coolfusion_local.tui.screens.arena import ArenaScreen
from coolfusion_local.tui.screens.arena_panels import ArenaPanel
from coolfusion_local.tui.screens.arena_report import ArenaReportScreen

PAIRING = Pairing("cool", "solo:alpha")


def loaded(app) -> bool:
    return bool(app.model_views) and all(v.state in ("loaded", "failed", "disabled") for v in app.model_views)


def stored() -> list[Comparison]:
    store = Store.open_default()
    try:
        return ComparisonLog(store).all()
    finally:
        store.close()


def answered(screen) -> bool:
    return not screen.answering and screen.current is not None and screen.current.state != "answering"


async def open_arena(app, pilot) -> ArenaScreen:
    await wait_until(pilot, lambda: loaded(app), what="models loaded")
    app.arena_pairing = PAIRING
    await pilot.press("f4")
    await wait_until(pilot, lambda: isinstance(app.screen, ArenaScreen), what="the arena")
    return app.screen


async def ask(pilot, screen, text: str) -> None:
    prompt = screen.query_one("#arena-prompt")
    prompt.focus()
    prompt.value = text
    await pilot.press("enter")
    await wait_until(pilot, lambda: answered(screen) and screen.current.prompt == text, what="both answers")
    await pilot.pause()


def side_of(comparison: Comparison, system: str) -> str:
    return "A" if comparison.system_a == system else "B"


async def test_vote_reveals_then_the_conversation_goes_on_from_the_kept_answer():
    engine = ScriptedEngine(answer=["Fused ", "answer."])
    app = make_app(engine, max_tokens=16)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_arena(app, pilot)
        await ask(pilot, screen, "Say hi.")
        c = screen.current
        assert c.state == "ready" and {c.system_a, c.system_b} == {"cool", "solo:alpha"}
        panels = {p.side: p for p in screen.query(ArenaPanel)}
        assert [p.border_title for p in panels.values()] == ["A", "B"]
        # Both systems were asked the same conversation with the same sampling and seed.
        assert [mode for mode, _ in engine.calls[-2:]] in (["cool", "solo:alpha"], ["solo:alpha", "cool"])
        assert "a: A better" in visible_text(screen.query_one("#arena-votes"))

        fused_side = side_of(c, "cool")
        await pilot.press(fused_side.lower())  # "a" or "b": the fused answer is better
        assert c.vote == fused_side and c.winner() == "cool"
        assert panels[fused_side].border_title == f"{fused_side} · cool" and panels[fused_side].has_class("-kept")
        assert screen.conversation == [Message("user", "Say hi."), Message("assistant", "Fused answer.")]

        # Changed before the next question: now the lead alone is better, and its answer is kept.
        other = "B" if fused_side == "A" else "A"
        await pilot.press(other.lower())
        assert c.vote == other and screen.conversation[-1] == Message("assistant", "alpha alone says hi.")
        assert [s.vote for s in stored()] == [other]

        await pilot.press("n")  # to the question box
        await ask(pilot, screen, "And then?")
        assert engine.calls[-1][1][:3] == [Message("user", "Say hi."), Message("assistant", "alpha alone says hi."),
                                           Message("user", "And then?")]
        await pilot.press("t")  # a tie keeps A
        assert screen.current.preferred_side() == "A"
        await pilot.press("n")
        await ask(pilot, screen, "Third?")
        await pilot.press("s")  # skipped: no vote
    kept = stored()
    assert [(s.prompt, s.state, s.vote) for s in kept] == [
        ("Say hi.", "voted", other), ("And then?", "voted", "tie"), ("Third?", "skipped", None)]
    assert kept[1].context[-1] == Message("assistant", "alpha alone says hi.")
    assert kept[0].seed is not None and kept[0].settings["max_tokens"] == 16


async def test_unvoted_pairs_wait_across_a_restart_and_are_walked_without_the_models(data_dir):
    store = Store.open_default()
    log = ComparisonLog(store)
    for n in range(2):
        c = Comparison(pairing="cool vs solo:alpha", system_a="cool", system_b="solo:alpha", context=[],
                       prompt=f"Prepared question {n}?", settings={"max_tokens": 8}, seed=n, source="run")
        log.add(c)
        c.answer_a, c.answer_b = Answer(f"first {n}", "eos"), Answer(f"second {n}", "eos")
        log.save_answers(c)
    store.close()

    for session in range(2):  # the second session is a restart: the one left unvoted waits for it
        engine = ScriptedEngine(hold_loads=True)  # the models never finish loading: votes must not wait for them
        app = make_app(engine)
        async with app.run_test(size=(80, 24)) as pilot:
            app.arena_pairing = PAIRING
            await pilot.press("f4")
            await wait_until(pilot, lambda: isinstance(app.screen, ArenaScreen))
            screen = app.screen
            await wait_until(pilot, lambda: screen.current is not None, what="the first pending pair")
            header = screen.query_one("#arena-header")
            if session == 0:
                assert screen.current.prompt == "Prepared question 0?"
                assert "waiting for your vote: 2" in visible_text(header)
                await pilot.press("b")
                await pilot.press("n")
                assert screen.current.prompt == "Prepared question 1?"
            else:
                assert screen.current.prompt == "Prepared question 1?"
                assert "waiting for your vote: 1" in visible_text(header)
                await pilot.press("s")  # skipped, and the walk is over: the header says so
                await wait_until(pilot, lambda: "waiting for your vote" not in visible_text(header),
                                 what="the end of the walk")
            await pilot.press("escape")  # what is left unvoted stays pending
            engine.release_loads.set()
        assert engine.calls == []
        states = {c.prompt: (c.state, c.vote) for c in stored()}
        second = ("ready", None) if session == 0 else ("skipped", None)
        assert states == {"Prepared question 0?": ("voted", "B"), "Prepared question 1?": second}


async def test_escape_stops_both_answers_and_the_comparison_is_kept_as_skipped():
    engine = ScriptedEngine(pause_after=1)
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_arena(app, pilot)
        prompt = screen.query_one("#arena-prompt")
        prompt.value = "Long one?"
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.answering and screen.words > 0, what="the answers under way")
        progress = visible_text(screen.query_one("#arena-progress"))
        assert "Writing both answers" in progress and "alpha" not in progress and "cool" not in progress
        await pilot.press("escape")
        await wait_until(pilot, lambda: answered(screen), what="the stop")
        assert screen.current.state == "skipped"
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, ArenaScreen))
    assert [c.state for c in stored()] == ["skipped"]


async def test_the_report_screen_shows_the_votes():
    engine = ScriptedEngine()
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_arena(app, pilot)
        await ask(pilot, screen, "Hello?")
        await pilot.press(side_of(screen.current, "cool").lower())
        await pilot.press("r")
        await wait_until(pilot, lambda: isinstance(app.screen, ArenaReportScreen))
        text = visible_text(app.screen.query_one("#arena-report-text"))
        assert "cool vs solo:alpha" in text and "100%" in text and "Wilson" in text
