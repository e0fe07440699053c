"""One self-rewriting line of progress on a terminal, a few plain lines elsewhere.

Fed by the `progress(label, done, total)` callbacks of downloads, assembly and
hashing. Logs and pipes get one line per step instead of thousands of `\\r`.
"""

from __future__ import annotations

import time
from typing import TextIO

_REDRAW_SECONDS = 0.1


class ProgressLine:
    def __init__(self, stream: TextIO):
        self.stream = stream
        self.interactive = stream.isatty()
        self.label: str | None = None
        self.last_draw = 0.0
        self.width = 0

    def update(self, label: str, done: int, total: int | None) -> None:
        if label != self.label:
            self.finish()
            self.label = label
            if not self.interactive:
                size = f" ({total / 1e6:.0f} MB)" if total else ""
                print(f"{label}{size} …", file=self.stream, flush=True)
        now = time.monotonic()
        if self.interactive and (now - self.last_draw >= _REDRAW_SECONDS or (total and done >= total)):
            self.last_draw = now
            amount = f"{done / 1e6:.0f}/{total / 1e6:.0f} MB {100 * done / total:3.0f}%" if total else \
                f"{done / 1e6:.0f} MB"
            text = f"{label}  {amount}"
            self.stream.write("\r" + text.ljust(self.width))
            self.stream.flush()
            self.width = len(text)

    def finish(self) -> None:
        """End the current line, if one is being drawn."""
        if self.label is not None and self.interactive:
            self.stream.write("\n")
            self.stream.flush()
        self.label = None
        self.width = 0
