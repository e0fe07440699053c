"""Route llama.cpp's own log into Python logging instead of the terminal.

llama.cpp prints to stderr by default, which corrupts a Textual screen and
clutters `--json` output; `verbose=False` in llama-cpp-python redirects file
descriptors instead, which blanks other threads' output. A log callback is the
clean way: messages go to the `coolfusion.llama` logger, and the last error
lines are kept so a failed load can be explained in one line.

Ctrl-C during a long llama.cpp call (loading a model) needs care too: Python
runs its SIGINT handler inside whichever Python callback llama.cpp calls next,
and a KeyboardInterrupt raised there is swallowed by ctypes ("Exception
ignored on calling ctypes callback function") while the load goes on or fails
for a made-up reason. `interrupts_held` notes the key press instead, so the
progress callback can cancel the load and the interrupt is raised once the C
call has returned.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import re
import signal
import threading
from collections import deque
from typing import Callable, Iterator

import llama_cpp

logger = logging.getLogger("coolfusion.llama")
# Silent unless the application attaches a handler (the CLI logs to a file).
logging.getLogger("coolfusion").addHandler(logging.NullHandler())

# ggml_log_level: NONE=0, DEBUG=1, INFO=2, WARN=3, ERROR=4, CONT=5
_LEVELS = {0: logging.CRITICAL, 1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}
_recent_problems: deque[str] = deque(maxlen=8)
_lock = threading.Lock()
_installed = False
_last_level = logging.DEBUG


@llama_cpp.llama_log_callback
def _on_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    global _last_level
    # Level 5 continues the previous message.
    python_level = _last_level if level == 5 else _LEVELS.get(level, logging.DEBUG)
    _last_level = python_level
    message = text.decode("utf-8", errors="replace").rstrip("\n")
    if not message:
        return
    if python_level >= logging.WARNING:
        _recent_problems.append(message.strip())
    logger.log(python_level, message)


def install() -> None:
    """Install the callback once per process (idempotent, thread-safe)."""
    global _installed
    with _lock:
        if _installed:
            return
        llama_cpp.llama_log_set(_on_log, ctypes.c_void_p(0))
        llama_cpp.llama_backend_init()
        _installed = True


def take_recent_problems() -> list[str]:
    """The warnings and errors logged since the last call, oldest first."""
    with _lock:
        problems = list(_recent_problems)
        _recent_problems.clear()
    return problems


@contextlib.contextmanager
def interrupts_held(pressed: threading.Event, on_interrupt: Callable[[], None] = lambda: None) -> Iterator[None]:
    """Hold Ctrl-C during a llama.cpp call: `pressed` is set, KeyboardInterrupt raised afterwards.

    Only the main thread receives signals, and only Python's default handler
    is replaced (a caller that ignores SIGINT, or handles it itself, keeps
    doing so). `on_interrupt` frees what the call made before it is raised.
    """
    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    signal.signal(signal.SIGINT, lambda signum, frame: pressed.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if pressed.is_set():
            on_interrupt()
            raise KeyboardInterrupt


_FUNCTION_PREFIX = re.compile(r"^[a-z_][a-z0-9_]*: ")
_CAUSE_PREFIXES = (
    "error loading model architecture: ",
    "error loading model hyperparameters: ",
    "error loading model vocabulary: ",
)


def _without_function_name(line: str) -> str:
    """ "check_tensor_dims: tensor 'x' not found" -> "tensor 'x' not found"."""
    return _FUNCTION_PREFIX.sub("", line, count=1)


def load_failure_reason(problems: list[str]) -> str:
    """The line of llama.cpp's log that says why a load failed, cleaned up for one line.

    `problems` are the warnings and errors logged during the load
    (`llama_log.take_recent_problems()`), oldest first. llama.cpp logs the
    cause ("llama_model_load: error loading model: error loading model
    vocabulary: unknown pre-tokenizer type: 'smollx'") and then a generic
    "llama_model_load_from_file_impl: failed to load model", so the last line
    alone tells the user nothing. When the cause is only "failed to load model
    from FILE", the GGUF reader said why just before ("invalid magic
    characters", "this GGUF file is version 7 ...").
    """
    lines = [" ".join(p.split()) for p in problems if p and p.strip()]
    for index in range(len(lines) - 1, -1, -1):
        line = lines[index]
        if "error loading model:" not in line:
            continue
        cause = line.rsplit("error loading model:", 1)[-1].strip()
        for prefix in _CAUSE_PREFIXES:
            cause = cause.removeprefix(prefix)
        if cause.startswith("llama_model_loader: failed to load model from"):
            earlier = [l for l in lines[:index] if l.startswith("gguf_")] or lines[:index]
            if earlier:
                return _without_function_name(earlier[0])
        return _without_function_name(cause) or "llama.cpp could not load it"
    specific = [l for l in lines if not l.endswith("failed to load model")]
    if specific:
        return _without_function_name(specific[-1])
    return "llama.cpp could not load it"
