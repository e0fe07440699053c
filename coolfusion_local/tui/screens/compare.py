"""Compare: the last question re-asked of every loaded model alone, beside the fused answer.

The solo answers run one after another on the engine thread (never two models
at once) through the same generate path, mode "solo:NAME", so their speed
figures are comparable with the fused answer's. They are not saved.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import replace

from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Static

from ...engine.events import AnswerDone, Message, SegmentChosen, SoloTextDelta
from ..store import StoredMessage, StoredSegment
from ..messages import EngineEvent
from ..runner import answer_job
from ..plain_text import plain
from ..widgets.message_box import AnswerBox

_runs = itertools.count(1)


class CompareScreen(Screen):
    BINDINGS = [
        Binding("escape", "stop_or_close", "Stop / close"),
        Binding("ctrl+r,q", "close", "Close"),
    ]

    def __init__(
        self,
        history: list[Message],
        fused: StoredMessage | None,
        models: list[str],
        colours: dict[str, str],
    ) -> None:
        super().__init__()
        self.history = history
        self.fused = fused
        self.models = models
        self.colours = colours
        self.cancel = threading.Event()
        run = next(_runs)
        self.tags = {f"compare-{run}-{i}": name for i, name in enumerate(models)}
        self.boxes: dict[str, AnswerBox] = {}
        self.remaining = set(self.tags)

    def compose(self):
        question = self.history[-1].content if self.history else ""
        yield Static(plain(f"Compare: {question}"), id="compare-question")
        with Horizontal(id="compare-columns"):
            if self.fused is not None:
                fused = replace(self.fused, segments=list(self.fused.segments))
                yield AnswerBox(fused, self.colours, title=f"Fused ({fused.mode or 'fusion'})", classes="column")
            else:
                yield Static("No fused answer to this question.", classes="column")
            for tag, name in self.tags.items():
                box = AnswerBox(
                    StoredMessage("assistant", "", mode=f"solo:{name}"),
                    self.colours,
                    title=f"{name} alone",
                    streaming=True,
                    classes="column solo",
                )
                box.status = "waiting its turn…"
                self.boxes[tag] = box
                yield box
        yield Footer()

    def on_mount(self) -> None:
        for tag, name in self.tags.items():
            # One job per model: the engine thread runs them strictly in turn.
            self.app.submit(
                answer_job(
                    self.post_message, tag, self.history, self.cancel,
                    mode=f"solo:{name}", max_tokens=self.app.max_tokens, sampling=self.app.sampling,
                )
            )

    async def on_engine_event(self, message: EngineEvent) -> None:
        box = self.boxes.get(message.tag)
        if box is None or not box.streaming:
            return
        event = message.event
        if isinstance(event, SegmentChosen):
            await box.add_segment(StoredSegment.from_record(event.as_record()))
        elif isinstance(event, SoloTextDelta):
            await box.add_text(event.text)
        elif isinstance(event, AnswerDone):
            await box.finish(event.text, event.stop_reason, event.stats.as_dict(), event.error)
            self.remaining.discard(message.tag)

    @property
    def running(self) -> bool:
        return bool(self.remaining)

    def action_stop_or_close(self) -> None:
        if self.running and not self.cancel.is_set():
            self.cancel.set()
            for tag in self.remaining:
                self.boxes[tag].set_status("stopping…")
        else:
            self.action_close()

    def action_close(self) -> None:
        self.cancel.set()  # the queued solo answers end at once, unrun
        self.dismiss()

    def on_unmount(self) -> None:
        self.cancel.set()
