"""The main screen: conversation list, the chat, the input, the segment inspector.

Asking: the question is saved at once, an AnswerBox is mounted, and a generate
job goes to the engine thread; its events come back as `EngineEvent`s tagged
with the answer they belong to. Only one answer is written at a time.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import threading
from dataclasses import dataclass

from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widget import Widget
from textual import events
from textual.widgets import Static

from ...engine.events import (
    AnswerDone,
    AnswerReranked,
    GenerationStats,
    Notice,
    SegmentChosen,
    SoloAnswerStarted,
    SoloTextDelta,
)
from ..store import StoredMessage, StoredSegment
from ..messages import EngineEvent, ModelsChanged
from ..plain_text import plain
from ..runner import answer_job
from ..session import ChatSession
from ..widgets.conversation_list import ConversationList
from ..widgets.key_hints import NARROW, KeyHints
from ..widgets.message_box import AnswerBox, UserMessage
from ..widgets.prompt import PromptArea
from ..widgets.segment_panel import SegmentPanel
from ..widgets.status_bar import StatusBar, legend
from .compare import CompareScreen
from .conversation_actions import ConversationActions
from .models import ModelsScreen

_tags = itertools.count(1)
CODE_BLOCK = re.compile(r"```[^\n]*\n(.*?)```", re.S)


@dataclass
class PendingAnswer:
    tag: str
    box: AnswerBox
    cancel: threading.Event
    done: asyncio.Event
    chosen: str | None = None  # Cool+R: "fused" or the model whose own answer won
    finishing: bool = False  # its AnswerDone is being shown and saved


class ChatScreen(ConversationActions, Screen):
    AUTO_FOCUS = "#prompt"
    BINDINGS = [
        Binding("escape", "stop", "Stop"),
        Binding("ctrl+n", "new_chat", "New"),
        Binding("ctrl+l", "clear_chat", "Clear"),
        Binding("ctrl+t", "toggle_colours", "Colours"),
        Binding("ctrl+s", "toggle_inspector", "Segments"),
        Binding("f7", "step_segment(-1)", "Prev seg", show=False),
        Binding("f8", "step_segment(1)", "Next seg", show=False),
        Binding("ctrl+r", "compare", "Compare"),
        Binding("ctrl+o", "models", "Models"),
        Binding("f3", "cycle_mode", "Mode"),
        Binding("f4", "arena", "Arena"),
        Binding("ctrl+y", "copy_answer", "Copy", priority=True),  # over the text box's redo
        Binding("ctrl+b", "toggle_sidebar", "Chats"),
        Binding("f2", "rename_chat", "Rename", show=False),
        Binding("question_mark", "app.help", "Help", show=False),
    ]

    def __init__(self, session: ChatSession, colours: dict[str, str]) -> None:
        super().__init__()
        self.session = session
        self.colours = colours
        self.coloured = False
        self.pending: PendingAnswer | None = None
        self.inspected: tuple[AnswerBox, int] | None = None
        self.quitting = False  # set while the app quits: save, but redraw nothing more
        self.narrow: bool | None = None  # below NARROW columns: no conversation list unless asked for

    def compose(self):
        with Horizontal(id="body"):
            yield ConversationList(id="sidebar")
            with Vertical(id="main"):
                yield VerticalScroll(id="log")
                yield Static(id="legend")
                yield PromptArea("Ask the fused models… (Enter sends, Ctrl+J new line, Esc stops, F1 help)", id="prompt")
            yield SegmentPanel(id="inspector")
        yield StatusBar(id="status")
        yield KeyHints()

    async def on_mount(self) -> None:
        self._fit_width(self.app.size.width)  # a screen hears of resizes only, not of its first size
        self.query_one("#legend").display = False
        self.query_one("#inspector").display = False
        await self.show_conversation()
        await self.refresh_sidebar()
        self.on_models_changed(None)
        self.query_one("#prompt").focus()
        self.show_notices()

    # ------------------------------------------------------------ asking

    async def on_prompt_area_submitted(self, event: PromptArea.Submitted) -> None:
        text = event.value.strip()
        if self.pending is not None:
            self.notify("An answer is still being written; Esc stops it.", severity="warning")
            if not event.prompt.text:
                event.prompt.value = event.value  # give the question back
            return
        await self.ask(text)

    async def ask(self, text: str) -> None:
        question = StoredMessage("user", text)
        self.session.add(question)
        await self.start_answer(UserMessage(question))
        self.show_notices()
        await self.refresh_sidebar()

    async def start_answer(self, *before: Widget) -> None:
        """Mount `before` (the question) and a streaming answer box, and queue its job."""
        history = self.session.history()
        tag = f"answer-{next(_tags)}"
        message = StoredMessage("assistant", "", mode=self.app.mode)
        box = AnswerBox(message, self.colours, title="Fused answer", coloured=self.coloured, streaming=True)
        cancel = threading.Event()
        # Busy from here, before anything is awaited: while the widgets mount,
        # a second Enter or anyone waiting for this answer must not find the
        # screen idle beside a box that has no answer yet.
        self.pending = PendingAnswer(tag, box, cancel, asyncio.Event())
        await self.chat_log.mount_all([*before, box])
        self.chat_log.anchor()
        self.app.submit(
            answer_job(self.post_message, tag, history, cancel, max_tokens=self.app.max_tokens, sampling=self.app.sampling)
        )

    async def on_engine_event(self, message: EngineEvent) -> None:
        pending = self.pending
        if pending is None or message.tag != pending.tag:
            return  # a late event of an answer already closed
        event, box = message.event, pending.box
        if isinstance(event, SegmentChosen):
            await box.add_segment(StoredSegment.from_record(event.as_record()))
        elif isinstance(event, Notice):
            self.notify(event.message, timeout=8)
        elif isinstance(event, SoloAnswerStarted):
            box.set_status(f"Cool+R: {event.model} writes its own answer…")
        elif isinstance(event, SoloTextDelta):
            pass  # the fused box shows only the fused draft; compare view shows solos
        elif isinstance(event, AnswerReranked):
            pending.chosen = event.chosen
            box.set_status(f"Cool+R: chose {'the fused answer' if event.chosen == 'fused' else event.chosen}")
        elif isinstance(event, AnswerDone):
            await self.finish_answer(event)

    async def finish_answer(self, done: AnswerDone) -> None:
        pending = self.pending
        if pending is None or pending.finishing:
            return
        pending.finishing = True
        box = pending.box
        try:
            box.message.mode = done.stats.mode or box.message.mode
            stats = done.stats.as_dict()
            if pending.chosen is not None:
                stats["rerank_chosen"] = pending.chosen  # saved with the answer, shown under it
            await box.finish(done.text, done.stop_reason, stats, done.error)
            self.app.note_answer(done)
            self.session.add(box.message)
            self.status_bar.set_speed(box.message.stats)
        finally:
            # Idle only once the answer is shown, saved and timed: whoever
            # waits for idle (a new question, compare, a test) finds all of it.
            self.pending = None
            pending.done.set()
        if done.error:
            self.notify(done.error, severity="error", timeout=10)
        self.show_notices()
        if self.query_one("#inspector").display and box.message.segments:
            self.inspect(box, 0)
        await self.refresh_sidebar()

    def action_stop(self) -> None:
        if self.pending is not None and not self.pending.cancel.is_set():
            self.pending.cancel.set()
            self.pending.box.set_status("stopping…")

    async def stop_and_save(self, timeout: float = 5.0) -> None:
        """Quitting: stop the answer, keep what it had (from the engine, or from the screen)."""
        self.quitting = True
        pending = self.pending
        if pending is None:
            return
        pending.cancel.set()
        try:
            await asyncio.wait_for(pending.done.wait(), timeout)
        except asyncio.TimeoutError:
            stats = GenerationStats(mode=pending.box.message.mode or "")
            await self.finish_answer(AnswerDone(pending.box.message.content, "stopped", stats))

    def busy(self, doing: str) -> bool:
        if self.pending is not None:
            self.notify(f"Stop the answer first (Esc), then {doing}.", severity="warning")
            return True
        return False

    # ------------------------------------------------------------ conversations

    @property
    def chat_log(self) -> VerticalScroll:
        return self.query_one("#log", VerticalScroll)

    @property
    def status_bar(self) -> StatusBar:
        return self.query_one("#status", StatusBar)

    async def show_conversation(self) -> None:
        await self.chat_log.remove_children()
        self.inspected = None
        widgets = []
        for message in self.session.messages:
            if message.role == "user":
                widgets.append(UserMessage(message))
            else:
                widgets.append(AnswerBox(message, self.colours, title="Fused answer", coloured=self.coloured))
        if widgets:
            await self.chat_log.mount_all(widgets)
        self.chat_log.border_title = plain(self.session.title)
        self.chat_log.anchor()

    async def refresh_sidebar(self) -> None:
        if self.quitting or not self.is_attached:
            return
        await self.query_one(ConversationList).show(self.session.conversations(), self.session.conversation_id)
        self.chat_log.border_title = plain(self.session.title)
        self.status_bar.set_saving(self.session.saving)

    # ------------------------------------------------------------ colours and segments

    def action_toggle_colours(self) -> None:
        self.coloured = not self.coloured
        for box in self.query(AnswerBox):
            box.set_coloured(self.coloured)
        self._show_legend()

    def _show_legend(self) -> None:
        # Only the models taking part: a switched-off model never wins a segment.
        names = [v.name for v in self.app.model_views if v.state != "disabled"] or list(self.colours)
        legend_line = self.query_one("#legend", Static)
        legend_line.update(legend(names, self.colours))
        legend_line.display = self.coloured

    def action_toggle_inspector(self) -> None:
        panel = self.query_one("#inspector")
        panel.display = not panel.display
        if panel.display and self.inspected is None:
            self.action_step_segment(0)

    def action_step_segment(self, step: int) -> None:
        if self.inspected is not None and self.inspected[0].is_mounted:
            box, index = self.inspected
        else:
            boxes = [b for b in self.query(AnswerBox) if b.message.segments]
            if not boxes:
                self.notify("No answer with segments yet.", severity="warning")
                return
            box, index = boxes[-1], 0
            step = 0
        count = len(box.message.segments)
        self.inspect(box, max(0, min(count - 1, index + step)))

    def on_answer_box_segment_selected(self, event: AnswerBox.SegmentSelected) -> None:
        if event.index is not None:
            self.inspect(event.box, event.index)

    def inspect(self, box: AnswerBox, index: int) -> None:
        if self.inspected is not None and self.inspected[0] is not box and self.inspected[0].is_mounted:
            self.inspected[0].select(None)
        self.inspected = (box, index)
        box.select(index)
        panel = self.query_one(SegmentPanel)
        panel.display = True
        segments = box.message.segments
        panel.show(segments[index] if index < len(segments) else None, len(segments), self.colours)

    # ------------------------------------------------------------ other views

    def action_compare(self) -> None:
        if self.busy("compare"):
            return
        exchange = self.session.last_exchange()
        if exchange is None:
            self.notify("Ask a question first; compare re-asks it of each model alone.", severity="warning")
            return
        loaded = [view.name for view in self.app.model_views if view.state in ("loaded", "failing")]
        if not loaded:
            self.notify("No model is loaded yet (Ctrl+O shows them).", severity="warning")
            return
        index, fused = exchange
        self.app.push_screen(
            CompareScreen(self.session.history(upto=index + 1), fused, loaded, self.colours)
        )

    def action_arena(self, pairing=None) -> None:
        """The blind A/B arena (screens/arena.py); `pairing` from the palette, else the last or default one."""
        if self.busy("open the arena"):
            return
        from .arena import ArenaScreen

        self.app.push_screen(ArenaScreen(pairing))

    def action_arena_report(self) -> None:
        from .arena_report import ArenaReportScreen

        self.app.push_screen(ArenaReportScreen())

    def action_models(self) -> None:
        self.app.push_screen(ModelsScreen())

    def action_cycle_mode(self) -> None:
        self.app.cycle_mode()

    def on_resize(self, event: events.Resize) -> None:
        self._fit_width(event.size.width)

    def _fit_width(self, width: int) -> None:
        # Only when the width crosses NARROW: Ctrl+B's choice holds while the size stays on one side.
        narrow = width < NARROW
        if narrow != self.narrow:
            self.narrow = narrow
            self.set_class(narrow, "-narrow")
            self.query_one("#sidebar").display = not narrow

    def action_toggle_sidebar(self) -> None:
        sidebar = self.query_one("#sidebar")
        sidebar.display = not sidebar.display

    def action_copy_answer(self) -> None:
        answer = self.session.last_answer()
        if answer is None:
            self.notify("No answer to copy yet.", severity="warning")
            return
        self.app.copy_to_clipboard(answer.content)
        self.notify(f"Copied the last answer ({len(answer.content)} characters).")

    def action_copy_code(self) -> None:
        answer = self.session.last_answer()
        blocks = CODE_BLOCK.findall(answer.content) if answer else []
        if not blocks:
            self.notify("The last answer has no code block.", severity="warning")
            return
        self.app.copy_to_clipboard(blocks[-1])
        self.notify("Copied the last code block.")

    # ------------------------------------------------------------ status

    def on_models_changed(self, _message: ModelsChanged | None) -> None:
        self.status_bar.set_models(self.app.model_views, self.app.mode)
        self.status_bar.set_sampling(self.app.sampling.summary())
        self.status_bar.set_activity(self.app.activity)
        if self.coloured:
            self._show_legend()
        if self.pending is not None and not self.pending.box.message.segments:
            if self.app.activity:
                self.pending.box.set_status(f"waiting: {self.app.activity}")
            else:
                self.pending.box.set_status("thinking…")

    def show_notices(self) -> None:
        for notice in self.session.take_notices():
            self.notify(notice, severity="warning", timeout=12)
