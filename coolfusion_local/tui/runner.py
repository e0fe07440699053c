"""The one thread that may touch the engine.

llama.cpp objects are not thread-safe, and two models decoding at once on a
small CPU are ~200x slower, so every engine call (create, load, generate, mode
changes, close) runs here, one job after another, in the order submitted. The
UI thread only submits jobs and handles the messages the jobs post back.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Callable

from textual.message import Message as TextualMessage

from ..engine.events import AnswerDone, GenerationStats, Message, ModelLoadStarted, ModelLoadWaiting, SegmentChosen
from ..errors import CoolfusionError, describe_os_error
from .messages import EngineEvent, EngineProblem, LoadFraction, LoadProgress, ModelsSnapshot, ModelView

log = logging.getLogger("coolfusion.tui")

Post = Callable[[TextualMessage], object]
Job = Callable[[object], None]


def safe_post(post: Post, message: TextualMessage) -> None:
    """Post from the engine thread; the UI may already be gone when quitting."""
    try:
        post(message)
    except RuntimeError:  # event loop closed
        pass


class EngineRunner:
    """A queue of engine jobs served by one daemon thread."""

    def __init__(self, factory: Callable[[], object], on_problem: Post) -> None:
        self._factory = factory
        self._on_problem = on_problem
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._serve, name="coolfusion-engine", daemon=True)
        self._engine = None
        self._factory_failed = False
        self._failure = ""

    def start(self) -> None:
        self._thread.start()

    def submit(self, job: Job) -> None:
        self._jobs.put(job)

    def close(self, timeout: float | None = None) -> bool:
        """Finish the queued jobs, close the engine; True if the thread ended in time."""
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                break
            engine = self._get_engine()
            if engine is None:
                # No engine (its creation failed and was reported): an answer still
                # has to end, so the screen waiting for it is released.
                fail = getattr(job, "fail", None)
                if fail is not None:
                    fail(self._failure)
                continue
            try:
                job(engine)
            except CoolfusionError as error:
                safe_post(self._on_problem, EngineProblem(str(error)))
            except OSError as error:  # the machine's doing (disk full, permissions): one line, no "bug"
                log.exception("engine job failed")
                safe_post(self._on_problem, EngineProblem(describe_os_error(error)))
            except Exception as error:  # a bug: keep the UI alive, keep the traceback
                log.exception("engine job failed")
                safe_post(self._on_problem, EngineProblem(f"internal error: {error} (see the log)"))
        if self._engine is not None:
            try:
                self._engine.close()
            except Exception:
                log.exception("closing the engine failed")

    def _get_engine(self):
        if self._engine is None and not self._factory_failed:
            try:
                self._engine = self._factory()
            except CoolfusionError as error:
                self._factory_failed, self._failure = True, str(error)
                safe_post(self._on_problem, EngineProblem(self._failure))
            except Exception as error:
                log.exception("creating the engine failed")
                self._factory_failed, self._failure = True, f"cannot start the engine: {error}"
                safe_post(self._on_problem, EngineProblem(self._failure))
        return self._engine


# --------------------------------------------------------------------------- jobs
# Plain functions of (engine, ...): easy to read, easy to test without a UI.


def snapshot(engine) -> ModelsSnapshot:
    views = []
    for name in engine.model_names:
        status = engine.status(name)
        views.append(
            ModelView(
                name=name,
                state=status.state,
                reason=status.reason,
                info=getattr(status, "info", None),
                spec=getattr(status, "spec", None),
            )
        )
    return ModelsSnapshot(views, engine.mode)


def load_models(engine, post: Post, poll_seconds: float = 0.25) -> None:
    """Load whatever is enabled and not loaded yet, reporting each model as it goes.

    engine.load() blocks inside llama.cpp for each model; a small poller thread
    reads the model's `status().progress` (a plain attribute, no lock) meanwhile
    so the UI can show a percentage.
    """
    pending = [n for n in engine.model_names if engine.status(n).state == "unloaded"]
    total = max(len(pending), 1)
    position = 0
    loading: list[str] = []  # the model being loaded now, if any
    finished = threading.Event()

    def poll() -> None:
        while not finished.wait(poll_seconds):
            if loading:
                fraction = getattr(engine.status(loading[0]), "progress", None)
                if fraction is not None:
                    safe_post(post, LoadFraction(loading[0], float(fraction)))

    poller = threading.Thread(target=poll, name="coolfusion-load-progress", daemon=True)
    poller.start()
    try:
        for event in engine.load():
            if isinstance(event, ModelLoadStarted):
                position += 1
                loading[:] = [event.model]
            elif not isinstance(event, ModelLoadWaiting):  # still loading after the wait
                loading.clear()
            safe_post(post, LoadProgress(event, min(position, total), total))
    finally:
        finished.set()
    safe_post(post, snapshot(engine))


def answer_job(
    post: Post,
    tag: str,
    messages: list[Message],
    cancel: threading.Event,
    mode: str | None = None,
    max_tokens: int | None = None,
    sampling=None,
) -> Job:
    """A job that streams one answer; its `fail` ends the answer if there is no engine."""

    def job(engine) -> None:
        generate_answer(engine, post, tag, messages, cancel, mode=mode, max_tokens=max_tokens, sampling=sampling)

    def fail(reason: str) -> None:
        stats = GenerationStats(mode=mode or "")
        safe_post(post, EngineEvent(tag, AnswerDone("", "error", stats, error=reason or "no engine")))

    job.fail = fail
    return job


def generate_answer(
    engine,
    post: Post,
    tag: str,
    messages: list[Message],
    cancel: threading.Event,
    mode: str | None = None,
    max_tokens: int | None = None,
    sampling=None,
) -> None:
    """Stream one answer; always ends with exactly one AnswerDone for `tag`."""
    stats = GenerationStats(mode=mode or engine.mode)
    if cancel.is_set():  # stopped while it waited its turn
        safe_post(post, EngineEvent(tag, AnswerDone("", "stopped", stats)))
        return
    text = ""
    try:
        for event in engine.generate(messages, mode=mode, max_tokens=max_tokens, sampling=sampling, cancel=cancel):
            safe_post(post, EngineEvent(tag, event))
            if isinstance(event, AnswerDone):
                return
            if isinstance(event, SegmentChosen):
                text += event.text  # kept in case the engine breaks off without AnswerDone
    except CoolfusionError as error:
        done = AnswerDone(text, "error", stats, error=str(error))
    except Exception as error:
        log.exception("generation failed")
        done = AnswerDone(text, "error", stats, error=f"internal error: {error} (see the log)")
    else:
        done = AnswerDone(text, "stopped" if cancel.is_set() else "eos", stats)
    safe_post(post, EngineEvent(tag, done))
