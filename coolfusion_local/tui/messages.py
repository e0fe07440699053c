"""Textual messages that carry engine news from the engine thread to the UI.

The engine thread never touches a widget: it posts one of these (thread-safe)
and the widget that asked for the work handles it on the UI thread.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from ..engine.events import GenerationEvent, LoadEvent


@dataclass(frozen=True)
class ModelView:
    """What the UI knows about one configured model (a copy of the engine's ModelStatus)."""

    name: str
    state: str  # "unloaded" | "loading" | "loaded" | "failed" | "disabled"
    reason: str | None = None
    info: object | None = None  # engine.events.ModelLoaded once loaded
    spec: object | None = None  # config.ModelSpec


class EngineEvent(Message):
    """One generation event for the answer identified by `tag`."""

    def __init__(self, tag: str, event: GenerationEvent) -> None:
        super().__init__()
        self.tag = tag
        self.event = event


class LoadProgress(Message):
    def __init__(self, event: LoadEvent, position: int, total: int) -> None:
        super().__init__()
        self.event = event
        self.position = position  # 1-based index of the model being loaded
        self.total = total


class LoadFraction(Message):
    """How far the model being loaded has got (0..1), polled while llama.cpp loads it."""

    def __init__(self, model: str, fraction: float) -> None:
        super().__init__()
        self.model = model
        self.fraction = fraction


class ModelsSnapshot(Message):
    """Every configured model's state and the current fusion mode."""

    def __init__(self, models: list[ModelView], mode: str) -> None:
        super().__init__()
        self.models = models
        self.mode = mode


class EngineProblem(Message):
    """A one-line problem outside any answer (no engine, a mode refused...)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class ModelsChanged(Message):
    """Sent to every screen after the app's model table or mode changed."""
