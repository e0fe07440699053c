"""The engine's one worker thread and the bounded queue in front of it.

The engine answers one request at a time (llama.cpp contexts are not
thread-safe; `FusionEngine` holds one lock), so every answer runs on this
thread, in arrival order, and its events cross to the event loop through an
asyncio queue per request. At most `max_waiting` requests wait behind the one
being answered; the next one is refused at once (`Busy`, a 429) instead of
hanging. Setting a job's `cancel` event stops its answer within one segment
(the engine checks it every round). A waiting job whose client leaves is taken
out of the queue at once, messages and all, so what the server holds stays
bounded by `max_waiting` however many clients come and go.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Sequence

from ..engine import AnswerDone, GenerationStats, Message
from ..fusion_engine import FusionEngine
from ..engine.sampling import Sampling

log = logging.getLogger("coolfusion.serve")

END = object()  # the last item of every job's event queue


class Busy(Exception):
    """The queue is full; retry after `retry_after` seconds."""

    def __init__(self, retry_after: int):
        super().__init__(f"retry after {retry_after}s")
        self.retry_after = retry_after


class ShuttingDown(Exception):
    pass


@dataclass(eq=False)  # a job is itself: `in` and `remove` compare identity, not 1 MB of messages
class Job:
    messages: list[Message]
    mode: str | None
    max_tokens: int | None
    stop: Sequence[str] | None
    sampling: Sampling | None
    fresh_cache: bool
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancel: threading.Event = field(default_factory=threading.Event)

    def deliver(self, item: object) -> None:
        """Called on the worker thread: hand one event to the request's coroutine."""
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, item)
        except RuntimeError:  # the event loop is gone (server shut down): nobody is listening
            self.cancel.set()


class EngineWorker:
    def __init__(self, engine: FusionEngine, max_waiting: int):
        self.engine = engine
        self.max_waiting = max_waiting
        self._running: Job | None = None
        self._waiting: deque[Job] = deque()  # in arrival order; a withdrawn job leaves it at once
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)  # a job arrived, or shutdown
        self._accepting = True
        self._durations: deque[float] = deque(maxlen=16)
        self._thread = threading.Thread(target=self._run, name="coolfusion-engine", daemon=True)

    def start(self) -> None:
        self._thread.start()

    # ----------------------------------------------------------- event-loop side

    def submit(self, messages: list[Message], *, mode: str | None, max_tokens: int | None,
               stop: Sequence[str] | None, sampling: Sampling | None, fresh_cache: bool = False) -> Job:
        job = Job(messages, mode, max_tokens, stop, sampling, fresh_cache, asyncio.get_running_loop())
        with self._lock:
            if not self._accepting:
                raise ShuttingDown()
            admitted = self._admitted()
            if admitted > self.max_waiting:
                raise Busy(self._retry_after(admitted))
            self._waiting.append(job)
            self._wake.notify()
        return job

    def _admitted(self) -> int:
        """The running job and the waiting ones (the lock is held)."""
        return len(self._waiting) + (self._running is not None)

    def _retry_after(self, ahead: int) -> int:
        """Seconds until a place is likely free: the recent mean answer time, or 5 s before any."""
        mean = sum(self._durations) / len(self._durations) if self._durations else 5.0
        return max(1, min(600, math.ceil(mean * max(ahead - self.max_waiting, 1))))

    def state(self) -> dict:
        with self._lock:
            admitted = self._admitted()
        return {"busy": admitted > 0, "waiting": max(admitted - 1, 0), "max_waiting": self.max_waiting}

    def withdraw(self, job: Job) -> None:
        """Its client left: stop the answer, or take it out of the queue, messages and all, at once."""
        job.cancel.set()
        with self._lock:
            if job in self._waiting:
                self._waiting.remove(job)
                job.messages = []  # the request may linger a moment; its prompt need not
        # (The running job ends within a segment; the worker then lets it go.)

    def shutdown(self) -> None:
        """Stop taking requests; end the running answer within a segment; end the waiting ones unanswered.

        Takes the worker's lock: never call it from a signal handler (the
        interrupted thread may hold it); see api/server.py.
        """
        with self._lock:
            self._accepting = False
            for job in (self._running, *self._waiting):
                if job is not None:
                    job.cancel.set()
            self._wake.notify()

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    # ----------------------------------------------------------- worker thread

    def _next_job(self) -> Job | None:
        """The next waiting job, made the running one; None once shut down with none left."""
        with self._lock:
            while not self._waiting and self._accepting:
                self._wake.wait()
            self._running = self._waiting.popleft() if self._waiting else None
            return self._running

    def _run(self) -> None:
        while (job := self._next_job()) is not None:
            started = time.perf_counter()
            try:
                if not job.cancel.is_set():
                    self._answer(job)
            finally:
                with self._lock:
                    self._running = None
                if not job.cancel.is_set():
                    self._durations.append(time.perf_counter() - started)
                job.deliver(END)  # after a shutdown: the request gets its 503

    def _answer(self, job: Job) -> None:
        try:
            if job.fresh_cache:
                self.engine.forget_cached_text()
            for event in self.engine.generate(job.messages, mode=job.mode, max_tokens=job.max_tokens,
                                              stop=job.stop, sampling=job.sampling, cancel=job.cancel):
                job.deliver(event)
        except Exception as error:  # a bug must cost one request, not the server
            log.exception("generation failed")
            job.deliver(AnswerDone("", "error", GenerationStats(), f"internal error: {type(error).__name__}"))
