"""The arena (F4): each question answered by two systems, shown blind as A and B, then a vote.

Both answers are written on the engine thread (one after the other, in a random
order) and shown together once both are done: neither streams at its own pace,
so speed gives nothing away; a progress line shows the work meanwhile. One key
votes (a, b, t, x); only then are the systems, their stats and the kept answer
shown. The conversation goes on from the preferred answer (A on a tie, on both
bad and on a skip), and a vote can be changed until the next question.

Opening the arena first walks the comparisons still waiting for a vote (from
`coolfusion arena run`, or left unvoted earlier): they are already answered, so
voting on them needs no model. Everything is written to the history database as
it happens (arena/comparisons.py): a question asked, both answers in, the vote.
"""

from __future__ import annotations

import itertools
import threading
import time

from textual import events
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message as TextualMessage
from textual.screen import Screen
from textual.widgets import Footer, Static

from ...arena.answering import answer_comparison, lead_name, settings_for
from ...arena.comparisons import VOTE_LABELS, Answer, Comparison, ComparisonLog
from ...arena.pairings import Pairing, all_pairings, default_pairing, draw_order, shared_sampling
from ...engine.events import Message
from ..runner import safe_post
from ..widgets.prompt import PromptArea
from .arena_panels import ArenaPanel

SIDE_BY_SIDE = 110  # columns from which A and B stand side by side
_tags = itertools.count(1)


class ArenaAnswered(TextualMessage):
    def __init__(self, tag: str) -> None:
        super().__init__()
        self.tag = tag


class ArenaProgress(TextualMessage):
    def __init__(self, tag: str, words: int) -> None:
        super().__init__()
        self.tag = tag
        self.words = words


class ArenaLead(TextualMessage):
    def __init__(self, lead: str | None, problem: str | None = None) -> None:
        super().__init__()
        self.lead = lead
        self.problem = problem


class ArenaScreen(Screen):
    CSS_PATH = "arena.tcss"
    AUTO_FOCUS = "#arena-prompt"
    BINDINGS = [
        Binding("a", "vote('A')", "A better"),
        Binding("b", "vote('B')", "B better"),
        Binding("t", "vote('tie')", "Tie"),
        Binding("x", "vote('both_bad')", "Both bad"),
        Binding("s", "skip", "Skip"),
        Binding("n", "next", "Next"),
        Binding("p", "next_pairing", "Pairing", show=False),
        Binding("r", "report", "Report", show=False),
        Binding("escape", "stop_or_close", "Stop / close"),
        Binding("f4", "close", "Close", show=False),
    ]

    def __init__(self, pairing: Pairing | None = None) -> None:
        super().__init__()
        self.pairing = pairing
        self.conversation: list[Message] = []  # the arena's own turns: questions and kept answers
        self.current: Comparison | None = None
        self.tag = ""
        self.cancel = threading.Event()
        self.answering_since: float | None = None
        self.words = 0
        self.walking: list[Comparison] = []  # pending comparisons left to vote on
        self.kept_turn = False  # the current comparison's exchange is in `conversation`
        self.asked_here = False  # the current comparison is a question asked on this screen (not a pending one)
        self.wide: bool | None = None

    # ------------------------------------------------------------ layout

    def compose(self):
        yield Static(id="arena-header")
        with VerticalScroll(id="arena-log"):
            yield Static(id="arena-question")
            with Vertical(id="arena-pair"):
                yield ArenaPanel("A")
                yield ArenaPanel("B")
        yield Static(id="arena-progress")
        yield Static(id="arena-votes")
        yield PromptArea("Ask both systems… (Enter sends; answers appear together; F1 help)", id="arena-prompt")
        yield Footer()

    @property
    def comparisons(self) -> ComparisonLog:
        return ComparisonLog(self.app.session.store)

    async def on_mount(self) -> None:
        self._fit_width(self.app.size.width)
        self.query_one("#arena-log").display = False
        self.walking = self._guard(lambda: self.comparisons.pending(), "read the pending comparisons") or []
        if self.walking:
            self.notify(f"{len(self.walking)} comparisons wait for your vote: they come first "
                        "(s skips one, Esc leaves them for later).", timeout=4)
            await self.show_next_pending()
        if self.pairing is None:
            self.pairing = self.app.arena_pairing
        if self.pairing is None:
            self._find_default_pairing()
        self._show_header()
        self._show_votes()
        self.set_interval(0.5, self._tick)

    def on_resize(self, event: events.Resize) -> None:
        self._fit_width(event.size.width)

    def _fit_width(self, width: int) -> None:
        wide = width >= SIDE_BY_SIDE
        if wide != self.wide:
            self.wide = wide
            self.set_class(wide, "-side")

    # ------------------------------------------------------------ the pairing

    def _find_default_pairing(self) -> None:
        """The configured fusion mode against the lead alone; the lead is known once models load."""
        post = self.post_message

        def job(engine) -> None:
            try:
                safe_post(post, ArenaLead(lead_name(engine)))
            except Exception as error:  # no model loaded: said in one line on screen
                safe_post(post, ArenaLead(None, str(error)))

        job.fail = lambda reason: safe_post(post, ArenaLead(None, reason or "no engine"))
        self.app.submit(job)

    def on_arena_lead(self, message: ArenaLead) -> None:
        if self.pairing is not None:
            return
        if message.lead is None:
            self.notify(f"The arena needs a loaded model: {message.problem}", severity="error", timeout=10)
            return
        self.pairing = default_pairing(self.app.mode, message.lead)
        self.app.arena_pairing = self.pairing
        self._show_header()

    def action_next_pairing(self) -> None:
        if self.answering or self.pairing is None:
            return
        pairings = all_pairings(self.app.modes())
        index = pairings.index(self.pairing) if self.pairing in pairings else -1
        self.choose_pairing(pairings[(index + 1) % len(pairings)])

    def choose_pairing(self, pairing: Pairing) -> None:
        self.pairing = self.app.arena_pairing = pairing
        self.conversation = []  # another pair of systems: a fresh conversation
        self.notify(f"Arena pairing: {pairing.label} (from the next question)")
        self._show_header()

    # ------------------------------------------------------------ asking

    @property
    def answering(self) -> bool:
        return self.answering_since is not None

    async def on_prompt_area_submitted(self, event: PromptArea.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        if self.answering:
            self.notify("Both answers are still being written; Esc stops them.", severity="warning")
            event.prompt.value = event.value
            return
        if self.pairing is None:
            self.notify("The models are still loading; ask again in a moment.", severity="warning")
            event.prompt.value = event.value
            return
        await self.ask(text)

    async def ask(self, text: str) -> None:
        if self.asked_here and self.current is not None and self.current.state == "ready" and not self.kept_turn:
            self._keep_turn()  # asked on without a vote: it stays pending, the conversation goes on from A
        self.walking = []  # a question of your own ends the walk through pending ones
        sampling = shared_sampling(self.app.sampling)
        system_a, system_b = draw_order(self.pairing)
        loaded = [v.name for v in self.app.model_views if v.state in ("loaded", "failing")]
        comparison = Comparison(
            pairing=self.pairing.label, system_a=system_a, system_b=system_b, context=list(self.conversation),
            prompt=text, settings=settings_for(sampling, self.app.max_tokens, loaded), seed=sampling.seed,
        )
        self._guard(lambda: self.comparisons.add(comparison), "save the question")
        self.current, self.kept_turn, self.asked_here = comparison, False, True
        self.tag = f"arena-{next(_tags)}"
        self.cancel = threading.Event()
        self.answering_since, self.words = time.monotonic(), 0
        await self._show_question(comparison)
        self.query_one("#arena-pair").display = False
        self._tick()
        self._show_header()
        self._show_votes()
        tag, post, cancel = self.tag, self.post_message, self.cancel

        def job(engine) -> None:
            answer_comparison(engine, comparison, cancel, progress=lambda words, _done: safe_post(
                post, ArenaProgress(tag, words)))
            safe_post(post, ArenaAnswered(tag))

        def fail(reason: str) -> None:
            comparison.answer_a = comparison.answer_b = Answer("", "error", reason or "no engine")
            safe_post(post, ArenaAnswered(tag))

        job.fail = fail
        self.app.submit(job)

    def on_arena_progress(self, message: ArenaProgress) -> None:
        if message.tag == self.tag:
            self.words = message.words

    async def on_arena_answered(self, message: ArenaAnswered) -> None:
        if message.tag != self.tag or self.current is None:
            return
        comparison = self.current
        self.answering_since = None
        self._guard(lambda: self.comparisons.save_answers(comparison), "save the answers")
        self._tick()
        await self._show_pair(comparison)
        if comparison.state == "failed":
            problem = next(a.error for a in (comparison.answer_a, comparison.answer_b) if a and a.error)
            self.notify(f"A system could not answer, so there is nothing to vote on: {problem}",
                        severity="error", timeout=12)
            self._reveal(comparison)
        elif comparison.state == "skipped":
            self.notify("Stopped: this comparison is kept as skipped.", timeout=6)
            self._reveal(comparison)
        else:
            self.query_one("#arena-log").focus()  # the vote keys work where the question box is not focused
        self._show_votes()

    def action_stop_or_close(self) -> None:
        if self.answering and not self.cancel.is_set():
            self.cancel.set()
            self.query_one("#arena-progress", Static).update("stopping…")
        else:
            self.action_close()

    def action_close(self) -> None:
        self.cancel.set()
        self.dismiss()

    def on_unmount(self) -> None:
        # A question being answered stays "answering" in the history; `arena run` finishes it.
        self.cancel.set()

    # ------------------------------------------------------------ voting

    @property
    def votable(self) -> bool:
        return (not self.answering and self.current is not None
                and self.current.state in ("ready", "voted", "skipped") and self.current.answer_a is not None
                and not (self.current.state == "skipped" and self.current.vote is None and self._stopped()))

    def _stopped(self) -> bool:
        c = self.current
        return any(a is not None and a.stop_reason == "stopped" for a in (c.answer_a, c.answer_b))

    def action_vote(self, vote: str) -> None:
        if not self.votable:
            self.notify("Nothing to vote on yet: ask a question first.", severity="warning")
            return
        comparison = self.current
        self._guard(lambda: self.comparisons.set_vote(comparison, vote), "save the vote")
        self._keep_turn()
        self._reveal(comparison)
        self._show_votes()  # says the vote: no notification over the line it is on

    def action_skip(self) -> None:
        if not self.votable:
            return
        comparison = self.current
        self._guard(lambda: self.comparisons.set_vote(comparison, None), "save the skip")
        self._keep_turn()
        self._reveal(comparison)
        self._show_votes()
        if self.walking:
            self.call_later(self.action_next)

    def _keep_turn(self) -> None:
        """The conversation goes on from the preferred answer (only for your own questions)."""
        c = self.current
        if not self.asked_here:
            return  # a pending comparison has its own conversation
        kept = c.answer_of(c.preferred_side())
        turn = [Message("user", c.prompt), Message("assistant", kept.text if kept else "")]
        if self.kept_turn:
            self.conversation[-2:] = turn  # a changed vote changes which answer was kept
        else:
            self.conversation += turn
            self.kept_turn = True

    async def action_next(self) -> None:
        if self.answering:
            return
        if self.walking:
            if self.current is not None and self.current.id == self.walking[0].id:
                self.walking.pop(0)
            if self.walking:
                await self.show_next_pending()
                return
            self.notify("No more comparisons waiting: ask your own question.", timeout=5)
        self.query_one("#arena-prompt").focus()
        self._show_header()
        self._show_votes()

    async def show_next_pending(self) -> None:
        comparison = self.walking[0]
        self.current, self.kept_turn, self.asked_here = comparison, False, False
        self.tag = ""
        await self._show_question(comparison)
        await self._show_pair(comparison)
        self.query_one("#arena-log").focus()
        self._show_header()
        self._show_votes()

    # ------------------------------------------------------------ drawing

    async def _show_question(self, comparison: Comparison) -> None:
        self.query_one("#arena-log").display = True
        earlier = len([m for m in comparison.context if m.role == "user"])
        lead_in = f"(after {earlier} earlier question{'s' if earlier != 1 else ''}) " if earlier else ""
        self.query_one("#arena-question", Static).update(Content(f"You: {lead_in}{comparison.prompt}"))
        for panel in self.query(ArenaPanel):
            await panel.show_blind(None)

    async def _show_pair(self, comparison: Comparison) -> None:
        pair = self.query_one("#arena-pair")
        pair.display = True
        for panel in self.query(ArenaPanel):
            await panel.show_blind(comparison.answer_of(panel.side))
        self.query_one("#arena-log", VerticalScroll).scroll_home(animate=False)

    def _reveal(self, comparison: Comparison) -> None:
        kept = comparison.preferred_side()
        for panel in self.query(ArenaPanel):
            panel.reveal(comparison.system_of(panel.side), comparison.answer_of(panel.side), panel.side == kept)
        self._show_header()

    def _show_header(self) -> None:
        pending = len(self.walking)
        if self.walking and self.current is not None and self.current.source == "run":
            what = f"Arena · waiting for your vote: {pending} (answered ahead by `arena run`)"
        elif self.walking:
            what = f"Arena · waiting for your vote: {pending}"
        else:
            what = "Arena · blind A/B: which answer is better?"
        if self.pairing is None:
            what += " · finding the lead model…"
        self.query_one("#arena-header", Static).update(Content(what))

    def _show_votes(self) -> None:
        votes = self.query_one("#arena-votes", Static)
        c = self.current
        if self.answering or c is None:
            text = "" if self.answering else "Ask a question: two systems answer it, shown as A and B in random order."
        elif c.state == "failed":
            text = "Nothing to vote on. Ask another question (Tab to the question box)."
        elif c.vote is None and c.state == "ready":
            text = "a: A better   b: B better   t: tie   x: both bad   s: skip"
        else:
            if c.state == "skipped":
                choice = "skipped"
            else:
                choice = f"your vote: {VOTE_LABELS[c.vote]}"
            kept = f" · the conversation goes on from {c.preferred_side()}" if self.asked_here else ""
            nxt = "n: next comparison" if len(self.walking) > 1 or (self.walking and c.id != self.walking[0].id) \
                else "n or Tab: your next question"
            text = f"{choice}{kept} · a/b/t/x change the vote · {nxt}"
        votes.update(Content(text))
        votes.display = bool(text)

    def _tick(self) -> None:
        line = self.query_one("#arena-progress", Static)
        if self.answering_since is None:
            line.display = False
            return
        seconds = time.monotonic() - self.answering_since
        activity = self.app.activity
        waiting = f" · waiting: {activity}" if activity else ""
        line.update(Content(f"Writing both answers… {seconds:.0f} s · {self.words} words so far{waiting} · "
                            "they appear together when both are done (Esc stops)"))
        line.display = True

    # ------------------------------------------------------------ report

    def action_report(self) -> None:
        from .arena_report import ArenaReportScreen

        self.app.push_screen(ArenaReportScreen())

    def _guard(self, work, what: str):
        import sqlite3

        try:
            return work()
        except sqlite3.Error as error:
            self.notify(f"Could not {what} in the history database: {error}; the arena goes on.",
                        severity="warning", timeout=10)
            return None
