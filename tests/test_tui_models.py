"""The chat UI over the REAL fusion engine and the repository's offline models.

Loads real GGUF files through llama.cpp: run it alone, under the models lock:
    flock /tmp/coolfusion-models.lock python -m pytest -m models tests/test_tui_models.py
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from tui_helpers import data_dir, idle, markdown_lines, send, shown_words, visible_text, wait_until  # noqa: F401

from coolfusion_local.tui.store import Store
from coolfusion_local.tui.app import CoolfusionApp
from coolfusion_local.tui.screens.compare import CompareScreen
from coolfusion_local.tui.widgets.message_box import AnswerBox

pytestmark = pytest.mark.models

REPO_CONFIG = Path(__file__).resolve().parents[1] / "models.toml"


def real_app(tmp_path) -> tuple[CoolfusionApp, list[str]]:
    from coolfusion_local.config import ModelSpec
    from coolfusion_local.fusion_engine import FusionEngine, load_config

    config = load_config(REPO_CONFIG)
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF but not really" * 10)
    # A model that cannot load beside the real ones: the others must keep working.
    config = replace(config, models=(*config.models, ModelSpec(name="broken", path=broken)))
    names = [spec.name for spec in config.models]
    app = CoolfusionApp(
        lambda: FusionEngine(config, mode="cool"), Store.open_default(), model_names=names, mode="cool", max_tokens=24
    )
    return app, [spec.name for spec in config.enabled_models if spec.name != "broken"]


def state(app, name):
    return next(v.state for v in app.model_views if v.name == name)


async def test_real_fused_answer_compare_and_a_broken_model(tmp_path):
    app, sources = real_app(tmp_path)
    assert len(sources) >= 2, "the repository config should fuse at least two models"
    async with app.run_test(size=(140, 40)) as pilot:
        status_bar = app.chat.query_one("#status")
        # Wait for what the user sees: the status bar hears of a load one message after the app does.
        await wait_until(
            pilot,
            lambda: "broken ✗ failed" in shown_words(status_bar)
            and all(f"{n} ✓" in shown_words(status_bar) for n in sources),
            timeout=180, what="the real models to load",
        )
        assert all(state(app, n) == "loaded" for n in sources) and state(app, "broken") == "failed"
        reason = next(v.reason for v in app.model_views if v.name == "broken")
        assert reason and "\n" not in reason

        await send(pilot, "What is the capital of France? Answer in one sentence.")
        await wait_until(pilot, lambda: idle(app) and app.chat.query(AnswerBox), timeout=180, what="the fused answer")
        box = app.chat.query_one(AnswerBox)
        message = box.message
        assert message.error is None and message.content.strip()
        assert message.stop_reason in ("eos", "max_tokens", "stop_string")
        assert message.segments and {s.winner for s in message.segments} <= set(sources)
        assert "".join(s.text for s in message.segments).strip() == message.content.strip()
        assert message.stats["tokens_per_second"] > 0
        assert "tok/s" in shown_words(app.chat.query_one("#status"))
        print("\nfused answer:", repr(message.content), "winners:", [s.winner for s in message.segments])

        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: isinstance(app.screen, CompareScreen))
        screen = app.screen
        await wait_until(pilot, lambda: not screen.running, timeout=240, what="the solo answers")
        solos = list(screen.query(AnswerBox))[1:]
        assert [b.border_title for b in solos] == [f"{n} alone" for n in sources]
        for solo in solos:
            assert solo.message.error is None and solo.message.content.strip()
            assert solo.message.stats["tokens_per_second"] > 0
            print(f"{solo.border_title}:", repr(solo.message.content))
        await pilot.press("escape")

    [conversation] = Store.open_default().list_conversations()
    assert conversation.message_count == 2


async def test_real_haiku_keeps_its_lines_on_screen(tmp_path):
    """The issue's prompt on the real models: every line the fused answer wrote starts a line on screen."""
    import re

    app, sources = real_app(tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_until(pilot, lambda: all(state(app, n) == "loaded" for n in sources), timeout=180,
                         what="the real models to load")
        await send(pilot, "Write a haiku about autumn rain, then explain it in one sentence.")
        await wait_until(pilot, lambda: idle(app) and app.chat.query(AnswerBox), timeout=180, what="the fused answer")
        box = app.chat.query_one(AnswerBox)
        written = [line.strip() for line in box.message.content.splitlines() if line.strip()]
        print("\nfused answer:", repr(box.message.content))
        assert len(written) >= 2, "the models wrote the haiku on one line: nothing to check"
        # The final render mounts the Markdown's blocks; their text can land a refresh later.
        await wait_until(pilot, lambda: markdown_lines(box.query_one("Markdown")), what="the answer on screen")
        shown = markdown_lines(box.query_one("Markdown"))
        plain = [line for line in written if not re.search(r"[*_#`|>\[\]\\]|^(\d+[.)]|[-+])\s", line)]
        for line in plain:
            assert any(row.startswith(line[:12]) for row in shown), (line, shown)
