"""uvicorn's server, stopping the engine worker when it stops.

SIGINT/SIGTERM reach `handle_exit` as a signal handler, run on the event-loop
thread between two bytecodes, possibly while that thread holds the worker's
lock (inside `submit`, `withdraw` or `state`). The handler therefore only sets
uvicorn's flag; the worker is shut down from `shutdown()`, which uvicorn's main
loop calls as an ordinary coroutine within a tick of the flag being set.
"""

from __future__ import annotations

import socket

import uvicorn

from .worker import EngineWorker


class StoppingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, worker: EngineWorker):
        super().__init__(config)
        self.worker = worker

    def handle_exit(self, sig, frame) -> None:
        super().handle_exit(sig, frame)  # sets flags only: no lock is taken
        # uvicorn re-raises the signal after a graceful stop; a clean stop exits 0 instead.
        getattr(self, "_captured_signals", []).clear()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # First the worker: the answer being written ends within a segment and its stream
        # closes well, so uvicorn's wait for open connections ends with it.
        self.worker.shutdown()
        await super().shutdown(sockets)
