"""A scripted stand-in for FusionEngine, for UI-behaviour tests only.

It replays canned segments through the engine's public API and event types so
the chat UI can be tested for streaming, stopping, colours and persistence in
milliseconds. It fuses nothing: no test using it says anything about fusion.
Tests of the real engine are marked `models`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from coolfusion_local.engine.events import (
    AnswerDone,
    Candidate,
    GenerationStats,
    ModelLoaded,
    ModelLoadFailed,
    ModelLoadStarted,
    ModelLoadWaiting,
    Notice,
    SegmentChosen,
)


@dataclass
class FakeSpec:
    name: str
    enabled: bool = True
    n_gpu_layers: int | None = None
    path: Path | None = None  # a local-file source, like config.ModelSpec
    pypi: str | None = None
    repo: str | None = None
    url: str | None = None  # a served model, like config.ModelSpec

    @property
    def is_remote(self) -> bool:
        return self.url is not None

    def describe_source(self) -> str:
        return f"scripted:{self.name}"


@dataclass
class FakeStatus:
    spec: FakeSpec
    state: str
    reason: str | None = None
    info: ModelLoaded | None = None
    progress: float = 0.0


DEFAULT_ANSWER = ["Paris ", "is the ", "capital ", "of France."]


class ScriptedEngine:
    def __init__(
        self,
        names=("alpha", "beta"),
        *,
        answer=None,  # list of segment texts, or callable(messages, mode) -> list
        fail: dict[str, str] | None = None,  # model -> load failure reason
        disabled=(),
        segment_delay: float = 0.0,
        hold_loads: bool = False,  # every model load waits until `release_loads` is set
        pause_after: int | None = None,  # hold the answer after this many segments...
        waiting: dict[str, str] | None = None,  # model -> the line its load waits with (the AMX probe's)
    ) -> None:
        self._names = list(names)
        self._status = {
            n: FakeStatus(FakeSpec(n, enabled=n not in disabled), "disabled" if n in disabled else "unloaded")
            for n in self._names
        }
        self._answer = answer or DEFAULT_ANSWER
        self._fail = dict(fail or {})
        self.segment_delay = segment_delay
        self.release_loads = threading.Event()  # a test decides when loading ends, not a clock
        if not hold_loads:
            self.release_loads.set()
        self.pause_after = pause_after
        self._waiting = dict(waiting or {})
        self.resume = threading.Event()  # ...until this is set (or the answer is cancelled)
        self.mode = "cool"
        self.calls: list[tuple[str, list]] = []  # (mode, messages) per generate()
        self.threads: set[int] = set()  # every thread that loaded, generated or closed
        self.closed = False

    # -------------------------------------------------------------- the API the UI uses

    @property
    def model_names(self) -> list[str]:
        return list(self._names)

    def status(self, name: str) -> FakeStatus:
        return self._status[name]

    def set_enabled(self, name: str, enabled: bool) -> None:
        self._seen()
        status = self._status[name]  # like FusionEngine: the spec (models.toml) is not changed
        if enabled and status.state == "disabled":
            status.state = "loaded" if status.info else "unloaded"
        elif not enabled and status.state != "failed":
            status.state = "disabled"

    def load(self):
        self._seen()
        for name in self._names:
            status = self._status[name]
            if status.state != "unloaded":
                continue
            status.state = "loading"
            yield ModelLoadStarted(name)
            if name in self._waiting:
                yield ModelLoadWaiting(name, self._waiting[name])
            self.release_loads.wait(30)
            if name in self._fail:
                status.state, status.reason = "failed", self._fail[name]
                yield ModelLoadFailed(name, self._fail[name])
            else:
                status.info = ModelLoaded(name, 0.1, 0, 24, 2048, 32000, "gguf")
                status.state, status.progress = "loaded", 1.0
                if not status.spec.enabled and self.mode != f"solo:{name}":
                    status.state = "disabled"  # as FusionEngine does for a model models.toml has off
                yield status.info

    def generate(self, messages, *, mode=None, max_tokens=None, stop=None, sampling=None, loop_guard=None, cancel=None):
        self._seen()
        mode = mode or self.mode
        self.calls.append((mode, list(messages)))
        self.last_sampling = sampling
        loaded = [n for n in self._names if self._status[n].state == "loaded"]
        stats = GenerationStats(mode=mode)
        if mode.startswith("solo:"):
            loaded = [mode[5:]]
            texts = [f"{mode[5:]} ", "alone ", "says hi."]
        else:
            texts = self._answer(messages, mode) if callable(self._answer) else list(self._answer)
        if not loaded:
            yield AnswerDone("", "error", stats, "no model is loaded")
            return
        if len(loaded) == 1 and not mode.startswith("solo:"):
            yield Notice(f"only {loaded[0]} is loaded: it answers alone")
        text = ""
        started = time.perf_counter()
        for i, piece in enumerate(texts):
            if self.pause_after is not None and i == self.pause_after:
                while not self.resume.wait(0.01):
                    if cancel is not None and cancel.is_set():
                        break
            if cancel is not None and cancel.is_set():
                yield self._done(text, "stopped", stats, started)
                return
            time.sleep(self.segment_delay)
            winner = loaded[i % len(loaded)]
            candidates = {
                n: Candidate(n, piece if n == winner else f"<{n} {i}>", False, 2) for n in loaded
            }
            scores = {s: {p: 0.5 if p == winner else 1.5 for p in loaded} for s in loaded}
            yield SegmentChosen(
                index=i, text=piece, winner=winner, proposers=(winner,), candidates=candidates,
                scores=scores if len(loaded) > 1 else {}, decision="solo" if len(loaded) == 1 else "scored",
                ends_answer=i == len(texts) - 1, seconds=0.01,
            )
            text += piece
            stats.segments += 1
            stats.answer_tokens += 2
            stats.wins[winner] = stats.wins.get(winner, 0) + 1
        yield self._done(text, "eos", stats, started)

    def close(self) -> None:
        self._seen()
        self.closed = True

    # -------------------------------------------------------------- helpers

    def _done(self, text, reason, stats, started) -> AnswerDone:
        stats.seconds = max(time.perf_counter() - started, 0.01)
        return AnswerDone(text, reason, stats)

    def _seen(self) -> None:
        self.threads.add(threading.get_ident())
