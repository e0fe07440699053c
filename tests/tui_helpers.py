"""Helpers for the chat UI's pilot tests: an app on a private data dir, and waiting without sleeps."""

from __future__ import annotations

import asyncio
import time

import pytest

from coolfusion_local.tui.store import Store
from coolfusion_local.tui.app import CoolfusionApp


def make_app(engine, *, mode: str = "cool", max_tokens: int | None = None) -> CoolfusionApp:
    """The app as `coolfusion chat` builds it, on whatever engine the test gives.

    The data dir comes from COOLFUSION_DATA_DIR, set per test by the `data_dir` fixture.
    """
    return CoolfusionApp(
        lambda: engine, Store.open_default(), model_names=engine.model_names, mode=mode, max_tokens=max_tokens
    )


def loaded(app) -> bool:
    """Every model the app lists has finished loading, one way or the other."""
    return bool(app.model_views) and all(v.state in ("loaded", "failed", "disabled") for v in app.model_views)


async def wait_until(pilot, predicate, timeout: float = 10.0, what: str = "the condition") -> None:
    """Let the app run until `predicate()` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await pilot.pause(0.02)


async def send(pilot, text: str, *, type_it: bool = False) -> None:
    """Put a question in the prompt (typed key by key if `type_it`) and press Enter."""
    prompt = pilot.app.screen.query_one("#prompt")
    prompt.focus()
    await pilot.pause()
    if type_it:
        await pilot.press(*text)
    else:
        prompt.value = text
    await pilot.press("enter")


def idle(app) -> bool:
    chat = app.chat
    return chat is not None and chat.pending is None


async def settle() -> None:
    await asyncio.sleep(0)


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    """Every test gets its own history folder: no test sees another's, or the user's.

    Imported by each test_tui*.py module (autouse there).
    """
    folder = tmp_path / "data"
    monkeypatch.setenv("COOLFUSION_DATA_DIR", str(folder))
    return folder


def visible_text(widget) -> str:
    """What the widget shows on screen now, as plain text lines."""
    from textual.geometry import Region

    width, height = widget.size
    return "\n".join(strip.text for strip in widget.render_lines(Region(0, 0, width, height)))


def shown_words(widget) -> str:
    """What the widget shows, with its wrapping undone: phrases stay findable however wide the numbers
    before them make the line (a status line's tok/s changes width from run to run)."""
    return " ".join(visible_text(widget).split())


def markdown_lines(markdown) -> list[str]:
    """The lines a Markdown widget shows: its blocks' text, top to bottom (the widget itself draws none)."""
    leaves = [w for w in markdown.query("*") if not w.children and w.display]
    return [line.strip() for leaf in leaves for line in visible_text(leaf).splitlines() if line.strip()]
