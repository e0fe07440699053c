"""The arena over the REAL engine and the offline models: the blind view gives nothing away.

Checked on the whole rendered screen, at 80x24 and at 120x40: before the vote no model
or system name, no speed, segment count or stop reason is on screen, and both panels are
drawn alike; after the vote the systems are named. Loads real GGUF files through llama.cpp:
    flock /tmp/coolfusion-models.lock python -m pytest -m models tests/test_tui_arena_models.py
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from tui_helpers import data_dir, wait_until  # noqa: F401  (data_dir: autouse fixture)

from coolfusion_local.arena.comparisons import ComparisonLog
from coolfusion_local.fusion_engine import FusionEngine, load_config
from coolfusion_local.tui.store import Store
from coolfusion_local.tui.app import CoolfusionApp
from coolfusion_local.tui.screens.arena import ArenaScreen
from coolfusion_local.tui.screens.arena_panels import ArenaPanel

pytestmark = pytest.mark.models

REPO_CONFIG = Path(__file__).resolve().parents[1] / "models.toml"
QUESTIONS = ["Name one colour of the rainbow.", "What is 3 + 4?"]
# Whatever could tell the systems apart, besides their words.
GIVEAWAYS = ["tok/s", "seg/s", "segments", "length limit", "stopped", "cool+r", "adaptive", "solo", "fused",
             "fusion", "qwen", "smollm", "gemma", "lead"]


def screen_text(app) -> str:
    """Every character on the terminal now, row by row (what a person sees)."""
    update = app.screen._compositor.render_full_update(simplify=True)
    return "\n".join("".join(strip.text for strip in row) for row in update.strips)


def giveaways(text: str, answers: list[str]) -> list[str]:
    # The answers' own words are the comparison itself; only the rest of the screen must say nothing.
    for answer in answers:
        for line in answer.splitlines():
            text = text.replace(line.strip(), "")
    lowered = text.lower()
    return [word for word in GIVEAWAYS if word in lowered]


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_the_blind_view_leaks_nothing_until_the_vote(size):
    config = load_config(REPO_CONFIG)
    names = [spec.name for spec in config.models]
    app = CoolfusionApp(lambda: FusionEngine(config, mode="cool"), Store.open_default(), model_names=names,
                        mode="cool", max_tokens=12)
    async with app.run_test(size=size) as pilot:
        await pilot.press("f4")
        await wait_until(pilot, lambda: isinstance(app.screen, ArenaScreen), what="the arena")
        screen = app.screen
        await wait_until(pilot, lambda: screen.pairing is not None, timeout=180, what="the models and the lead")
        assert screen.pairing.label == "cool vs solo:qwen-coder-0.5b"  # the default: fusion against the lead alone
        for question in QUESTIONS:
            prompt = screen.query_one("#arena-prompt")
            prompt.focus()
            prompt.value = question
            # Hold the engine thread until the view while answering is checked: on an idle machine
            # 12 tokens of both systems can be written before the first look.
            gate = threading.Event()
            app.submit(lambda engine: gate.wait(60))
            await pilot.press("enter")
            await wait_until(pilot, lambda: screen.answering, what="the answers under way")
            await pilot.pause(0.6)
            during = screen_text(app)
            gate.set()
            assert "Writing both answers" in during and giveaways(during, []) == []
            await wait_until(pilot, lambda: not screen.answering, timeout=240, what="both real answers")
            await pilot.pause(0.2)
            c = screen.current
            assert c.state == "ready", (c.answer_a, c.answer_b)
            answers = [c.answer_a.text, c.answer_b.text]
            assert all(a.strip() for a in answers)
            blind = screen_text(app)
            panels = list(screen.query(ArenaPanel))
            assert [p.border_title for p in panels] == ["A", "B"]
            assert panels[0].classes == panels[1].classes
            assert panels[0].styles.border == panels[1].styles.border
            assert all(not p.query_one(".arena-meta").display for p in panels)
            assert giveaways(blind, answers) == [], blind
            print(f"\n--- blind, {size[0]}x{size[1]} ---\n{blind}")

            await pilot.press("a")
            await pilot.pause(0.2)
            shown = screen_text(app)
            assert f"A · {c.system_a}" in shown and "tok/s" in shown
            await pilot.press("n")
    store = Store.open_default()
    try:
        kept = ComparisonLog(store).all()
    finally:
        store.close()
    assert [(k.prompt, k.vote) for k in kept] == [(q, "A") for q in QUESTIONS]
    assert all(k.answer_a.stats.get("system") == k.system_a for k in kept)
    # Same sampling settings and one seed for both answers of a comparison.
    assert all(k.seed is not None and k.settings["sampling"]["temperature"] > 0 for k in kept)
