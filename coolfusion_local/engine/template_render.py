"""Rendering untrusted chat templates: bounded by construction, in a process that can be stopped.

A chat template comes from a downloaded GGUF file, so it is hostile until
shown otherwise. Two layers keep it from hanging the app or exhausting memory:

1. Inside the renderer, Jinja's immutable sandbox (no Python internals) with
   every operation that can make something big checked *before* it runs:
   powers and products by the size of their result, `%` formatting, padding
   and `format` by their widths, `join`/`replace` and the filters that pad or
   repeat by the size they would produce, and every value a call, operator or
   attribute returns by its size (strings and lists by length, integers by
   bits). A template that tries gets one clear line.
2. The renderer runs in its own worker process, with a memory limit (POSIX)
   and a wall-clock limit enforced from outside: a single C-level operation
   the checks missed, or a loop that never calls anything, cannot be stopped
   from inside Python, but the process can be killed.

The worker is started once per process and kept: starting it costs about
0.3 s once, and a render then costs one pipe round trip more than rendering
in-process (Gemma 4's 12 kB template, 4 messages, on a busy 2-core machine:
0.79 ms median against 0.24 ms), a few ms per question; a fresh process per
render would cost the 0.3 s every time, and prompts are rendered several
times per question (trimming long chats bisects over renders).
Validating once and rendering in-process afterwards was rejected: what a
template does depends on the conversation, so a first render proves nothing
about the hundredth.

This file runs as a script in the worker, so it imports only the standard
library and jinja2 (never the coolfusion package: llama.cpp would load).
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from datetime import datetime
from typing import Any

MAX_PROMPT_CHARS = 2_000_000  # far beyond any context; a template past it is hostile or broken
MAX_ITEMS = 100_000  # items in any list, tuple or dict a template makes (Jinja caps range() here too)
MAX_INT_BITS = 4096  # no chat template needs a bigger number than this
MAX_RENDER_SECONDS = 5.0
WORKER_MEMORY_BYTES = 768 * 2**20  # address space of the worker process (POSIX)
TEMPLATE_CACHE = 32  # compiled templates kept by the worker


class RenderRefused(Exception):
    """The template was stopped or failed; `kind` says how (see `_KINDS`), the message says why."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


# ============================================================================ inside the worker


def _sandbox_environment(deadline: list[float]):
    """The immutable sandbox with size checks on everything that can grow."""
    import jinja2
    from jinja2.nodes import EvalContext
    from jinja2.runtime import Context
    from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

    def refuse(what: str) -> None:
        raise SecurityError(what)

    def check_time() -> None:
        if time.monotonic() > deadline[0]:
            raise SecurityError("the template took too long to render")

    def bounded(value: Any) -> Any:
        """`value`, if it is of a size a chat template may make."""
        if isinstance(value, (str, bytes)):
            if len(value) > MAX_PROMPT_CHARS:
                refuse(f"a string of {len(value):,} characters (limit {MAX_PROMPT_CHARS:,})")
        elif isinstance(value, (list, tuple, dict, set, frozenset)):
            if len(value) > MAX_ITEMS:
                refuse(f"a collection of {len(value):,} items (limit {MAX_ITEMS:,})")
        elif isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
            refuse(f"a number of {value.bit_length():,} bits (limit {MAX_INT_BITS:,})")
        return value

    def length(value: Any) -> int:
        return len(value) if isinstance(value, (str, bytes, list, tuple, dict)) else len(str(value))

    def check_size(size: int, what: str) -> None:
        if size > MAX_PROMPT_CHARS:
            refuse(f"{what} of about {size:,} characters (limit {MAX_PROMPT_CHARS:,})")

    def check_width(width: Any, what: str) -> None:
        if isinstance(width, int) and width > MAX_PROMPT_CHARS:
            refuse(f"{what} {width:,} wide (limit {MAX_PROMPT_CHARS:,})")

    printf_field = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
    format_field = re.compile(r"\{[^{}]*:[^{}]*?(\{|\d+)[^{}]*\}")

    def check_printf(pattern: str) -> None:
        for width, precision in printf_field.findall(pattern):
            for number in (width, precision):
                if number == "*" or (number and int(number) > MAX_PROMPT_CHARS):
                    refuse(f"a %-format width of {number} (limit {MAX_PROMPT_CHARS:,})")

    def check_format(pattern: str) -> None:
        for number in format_field.findall(pattern):
            if number == "{" or int(number) > MAX_PROMPT_CHARS:
                refuse("a format width too large or given by an argument")

    def check_join(items: Any, separator: str = "") -> None:
        if isinstance(items, (list, tuple)):
            check_size(sum(length(item) for item in items) + len(separator) * len(items), "a join")

    def check_call(function: Any, args: tuple, kwargs: dict) -> None:
        owner, name = getattr(function, "__self__", None), getattr(function, "__name__", "")
        for value in (*args, *kwargs.values()):
            bounded(value)
        if isinstance(owner, (str, bytes)):
            if name in ("center", "ljust", "rjust", "zfill") and args:
                check_width(args[0], f"str.{name} to")
            elif name == "expandtabs":
                check_size(len(owner) * max(args[0] if args and isinstance(args[0], int) else 8, 1), "expandtabs")
            elif name == "join" and args:
                check_join(list(args[0]) if isinstance(args[0], (list, tuple)) else args[0], owner)
            elif name == "replace" and len(args) >= 2:
                occurrences = owner.count(args[0]) if args[0] else len(owner) + 1
                check_size(len(owner) + occurrences * len(args[1]), "a replace")
            elif name in ("translate", "format_map"):
                refuse(f"str.{name} is not allowed in a chat template")
        elif isinstance(owner, int) and name == "to_bytes":
            check_width(args[0] if args else kwargs.get("length", 1), "int.to_bytes")

    def guard_filter(name: str, function: Any) -> Any:
        def guarded(*args: Any, **kwargs: Any) -> Any:
            check_time()
            values = [a for a in args if not isinstance(a, (Context, EvalContext, jinja2.Environment))]
            for value in (*values, *kwargs.values()):
                bounded(value)
            if name == "center" and len(values) > 1:
                check_width(values[1], "center")
            elif name == "indent" and values:
                width = values[1] if len(values) > 1 else kwargs.get("width", 4)
                lines = str(values[0]).count("\n") + 2
                check_size(lines * (width if isinstance(width, int) else length(width)) + length(values[0]), "indent")
            elif name in ("batch", "slice") and len(values) > 1:
                check_width(values[1] if isinstance(values[1], int) else 0, name)
                if isinstance(values[1], int) and values[1] > MAX_ITEMS:
                    refuse(f"{name} into {values[1]:,} parts (limit {MAX_ITEMS:,})")
            elif name == "join" and values:
                items = values[0]
                if isinstance(items, (list, tuple)):
                    check_join(items, values[1] if len(values) > 1 and isinstance(values[1], str) else "")
            elif name == "format" and values and isinstance(values[0], str):
                check_printf(values[0])
            elif name == "replace" and len(values) >= 3 and isinstance(values[0], str):
                check_call(values[0].replace, (values[1], values[2]), {})
            elif name == "sum" and values and isinstance(values[0], (list, tuple)):
                check_size(sum(length(item) for item in values[0] if not isinstance(item, (int, float))), "a sum")
            elif name == "tojson":
                indent = values[1] if len(values) > 1 else kwargs.get("indent")
                if isinstance(indent, int) and indent > 64:
                    refuse(f"tojson indented by {indent:,} (limit 64)")
            elif name == "wordwrap" and len(values) > 1:
                check_width(values[1], "wordwrap")
            return bounded(function(*args, **kwargs))

        guarded.__dict__.update(getattr(function, "__dict__", {}))  # keeps Jinja's pass_context/pass_environment marks
        return guarded

    class BoundedSandbox(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})

        def call_binop(self, context, op, left, right):
            check_time()
            integers = all(isinstance(v, int) and not isinstance(v, bool) for v in (left, right))
            if op == "**" and integers and right > 0 and max(left.bit_length(), 1) * right > MAX_INT_BITS * 2:
                refuse(f"a power of about {left.bit_length() * right:,} bits (limit {MAX_INT_BITS:,})")
            if op == "*":
                if integers and left.bit_length() + right.bit_length() > MAX_INT_BITS + 1:
                    refuse(f"a product of about {left.bit_length() + right.bit_length():,} bits")
                for sequence, count in ((left, right), (right, left)):
                    if isinstance(sequence, (str, bytes, list, tuple)) and isinstance(count, int):
                        items = sum(length(item) for item in sequence) if isinstance(sequence, (list, tuple)) else 0
                        check_size((len(sequence) + items) * count, "a repeated string or list")
            if op == "%" and isinstance(left, str):
                check_printf(left)
            if op == "+" and isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
                check_size(len(left) + len(right), "a concatenation")
            return bounded(super().call_binop(context, op, left, right))

        def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 - Jinja's own signature
            check_time()
            check_call(__obj, args, kwargs)
            return bounded(super().call(__context, __obj, *args, **kwargs))

        def getattr(self, obj, attribute):
            check_time()
            if isinstance(obj, str) and attribute == "format":
                check_format(obj)
            return bounded(super().getattr(obj, attribute))

        def getitem(self, obj, argument):
            check_time()
            return bounded(super().getitem(obj, argument))

    environment = BoundedSandbox(trim_blocks=True, lstrip_blocks=True)
    environment.filters = {name: guard_filter(name, f) for name, f in environment.filters.items()}

    def lipsum(n: int = 5, *args: Any, **kwargs: Any) -> Any:
        if isinstance(n, int) and n > 100:
            refuse(f"lipsum of {n:,} paragraphs")
        return jinja2.utils.generate_lorem_ipsum(n, *args, **kwargs)

    def raise_exception(message: str) -> None:
        raise _TemplateRaised(str(message))

    environment.globals.update(
        lipsum=lipsum,
        raise_exception=raise_exception,
        strftime_now=lambda fmt: datetime.now().strftime(fmt),
    )
    return environment


class _TemplateRaised(Exception):
    """The template called raise_exception(): it refuses this conversation."""


_KINDS = ("parse", "refused", "unsafe", "failed", "too_long", "memory", "too_slow", "crashed")


def _render_request(environment, compiled: dict, request: dict, deadline: list[float]) -> dict:
    from jinja2 import TemplateError as JinjaError
    from jinja2.sandbox import SecurityError

    source = request["template"]
    try:
        template = compiled.get(source)
        if template is None:
            template = environment.from_string(source)
            if len(compiled) >= TEMPLATE_CACHE:
                compiled.pop(next(iter(compiled)))
            compiled[source] = template
    except JinjaError as error:
        return {"kind": "parse", "message": str(error).splitlines()[0] if str(error) else type(error).__name__}
    except (RecursionError, MemoryError) as error:
        return {"kind": "parse", "message": type(error).__name__}
    if "variables" not in request:
        return {"text": ""}
    deadline[0] = time.monotonic() + request.get("seconds", MAX_RENDER_SECONDS)
    chunks: list[str] = []
    size = 0
    try:
        for chunk in template.generate(**request["variables"]):
            size += len(chunk)
            chunks.append(chunk)
            if size > MAX_PROMPT_CHARS:
                return {"kind": "too_long", "message": "it produced an absurdly long prompt"}
            if time.monotonic() > deadline[0]:
                return {"kind": "too_slow", "message": "it took too long to render"}
        return {"text": "".join(chunks)}
    except _TemplateRaised as error:
        return {"kind": "refused", "message": str(error)}
    except SecurityError as error:
        return {"kind": "unsafe", "message": str(error)}
    except MemoryError:
        chunks.clear()
        return {"kind": "memory", "message": "it used too much memory"}
    except Exception as error:  # a template bug: undefined variable, bad filter, RecursionError...
        return {"kind": "failed", "message": f"{type(error).__name__}: {error}".splitlines()[0][:300]}


def _limit_memory() -> None:
    try:
        import resource
    except ImportError:  # Windows: the wall-clock limit still stops it
        return
    try:
        resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY_BYTES, WORKER_MEMORY_BYTES))
    except (ValueError, OSError):
        pass


def serve() -> None:
    """The worker's loop: one JSON request per line on stdin, one JSON reply per line on stdout."""
    _limit_memory()
    deadline = [0.0]
    environment = _sandbox_environment(deadline)
    compiled: dict = {}
    reader, writer = sys.stdin, sys.stdout
    for line in reader:
        try:
            reply = _render_request(environment, compiled, json.loads(line), deadline)
        except MemoryError:
            reply = {"kind": "memory", "message": "it used too much memory"}
        writer.write(json.dumps(reply) + "\n")
        writer.flush()


# ============================================================================ in the application


class _Worker:
    """The renderer process, started on first use and restarted after it is killed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._replies: queue.Queue = queue.Queue()

    def _start(self) -> subprocess.Popen:
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                [sys.executable, "-X", "utf8", os.path.abspath(__file__)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                encoding="utf-8",
                bufsize=1,
                # Ctrl-C goes to the foreground process group: the app decides, not the worker.
                start_new_session=os.name == "posix",
            )
            self._replies = queue.Queue()
            threading.Thread(
                target=self._read, args=(self._process, self._replies), name="template-worker", daemon=True
            ).start()
        return self._process

    @staticmethod
    def _read(process: subprocess.Popen, replies: queue.Queue) -> None:
        for line in process.stdout:
            replies.put(line)
        replies.put(None)  # the process ended

    def ask(self, request: dict, seconds: float) -> dict:
        with self._lock:
            try:
                process = self._start()
                process.stdin.write(json.dumps(request) + "\n")
                process.stdin.flush()
            except OSError as error:
                self.stop()
                raise RenderRefused("crashed", f"its renderer could not start ({error})") from None
            try:
                line = self._replies.get(timeout=seconds + 2.0)  # the worker's own limit goes first
            except queue.Empty:
                self.stop()
                raise RenderRefused("too_slow", "it took too long to render") from None
            if line is None:
                self.stop()
                raise RenderRefused("crashed", "its renderer stopped (out of memory?)")
            return json.loads(line)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
        if process is not None:
            process.wait()
            for stream in (process.stdin, process.stdout):
                try:
                    stream.close()
                except OSError:
                    pass


_worker = _Worker()


def _ask(request: dict, seconds: float) -> dict:
    reply = _worker.ask(request, seconds)
    if "text" not in reply:
        raise RenderRefused(reply.get("kind", "failed"), reply.get("message", "unknown failure"))
    return reply


def check_template(source: str) -> None:
    """Parse `source` in the worker; RenderRefused("parse", ...) when it is not a template."""
    _ask({"template": source}, MAX_RENDER_SECONDS)


def render_template(source: str, variables: dict, seconds: float = MAX_RENDER_SECONDS) -> str:
    """Render `source` with JSON-able `variables` in the worker, within `seconds`."""
    return _ask({"template": source, "variables": variables, "seconds": seconds}, seconds)["text"]


def stop_worker() -> None:
    """End the renderer process (it starts again when next needed)."""
    with _worker._lock:
        _worker.stop()


if __name__ == "__main__":
    serve()
