"""Blind comparisons kept in the conversation store (table `comparisons`, store.py's schema 3).

A comparison is written when its question is asked (state "answering"), again as
soon as both answers are in ("ready": pending a vote), and once more at the vote
("voted") or when it is passed over ("skipped"). Each write is its own committed
transaction, so a crash or Ctrl+C loses at most the answers being written: the
question stays, `arena run` finishes it, and a ready one waits for its vote
across restarts.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field

from ..engine.events import Message
from ..tui.store import Store

VOTES = ("A", "B", "tie", "both_bad")
VOTE_LABELS = {"A": "A better", "B": "B better", "tie": "tie", "both_bad": "both bad"}
# answering: asked, answers not all in; ready: both in, no vote (pending); voted; skipped:
# passed over without a vote (or stopped); failed: a system could not answer.
STATES = ("answering", "ready", "voted", "skipped", "failed")


@dataclass
class Answer:
    """One system's answer and what was hidden until the vote (its stop reason, stats, error)."""

    text: str = ""
    stop_reason: str = ""
    error: str | None = None
    stats: dict = field(default_factory=dict)

    def detail_json(self) -> str:
        return json.dumps({"stop_reason": self.stop_reason, "error": self.error, "stats": self.stats})

    @classmethod
    def from_columns(cls, text: str | None, detail: str | None) -> "Answer | None":
        if text is None:
            return None
        extra = _loads(detail)
        return cls(text, extra.get("stop_reason") or "", extra.get("error"), dict(extra.get("stats") or {}))


@dataclass
class Comparison:
    pairing: str  # Pairing.label: "cool vs solo:qwen-coder-0.5b"
    system_a: str
    system_b: str
    context: list[Message]  # the conversation before the question
    prompt: str
    settings: dict  # sampling (as_dict), max_tokens, the models that took part
    seed: int | None
    source: str = "chat"  # "chat" or "run" (answered ahead by `arena run`)
    answer_a: Answer | None = None
    answer_b: Answer | None = None
    state: str = "answering"
    vote: str | None = None
    voted_at: float | None = None
    created_at: float = field(default_factory=time.time)
    id: int | None = None

    @property
    def pending(self) -> bool:
        return self.state == "ready"

    def system_of(self, side: str) -> str:
        return self.system_a if side == "A" else self.system_b

    def answer_of(self, side: str) -> Answer | None:
        return self.answer_a if side == "A" else self.answer_b

    def preferred_side(self) -> str:
        """The answer the conversation goes on from: the better one, A on a tie or both bad."""
        return "B" if self.vote == "B" else "A"

    def winner(self) -> str | None:
        """The system that won, None for a tie, both bad or no vote."""
        if self.vote in ("A", "B"):
            return self.system_of(self.vote)
        return None

    def as_record(self) -> dict:
        """Everything about it, for `arena report --export`."""
        def answer(a: Answer | None):
            return None if a is None else {"text": a.text, "stop_reason": a.stop_reason, "error": a.error,
                                           "stats": a.stats}

        return {
            "id": self.id, "created_at": self.created_at, "source": self.source, "pairing": self.pairing,
            "system_a": self.system_a, "system_b": self.system_b,
            "context": [{"role": m.role, "content": m.content} for m in self.context],
            "prompt": self.prompt, "settings": self.settings, "seed": self.seed,
            "answer_a": answer(self.answer_a), "answer_b": answer(self.answer_b),
            "state": self.state, "vote": self.vote, "voted_at": self.voted_at,
            "winner": self.winner(),
        }


class ComparisonLog:
    """Reads and writes comparisons through a `Store` (its retries, its fall-back to memory)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, comparison: Comparison) -> int:
        c = comparison

        def work(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "INSERT INTO comparisons(created_at, source, pairing, system_a, system_b, context, prompt,"
                " settings, seed, answer_a, answer_b, detail_a, detail_b, state, vote, voted_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (c.created_at, c.source, c.pairing, c.system_a, c.system_b, _context_json(c.context), c.prompt,
                 json.dumps(c.settings), c.seed, *_answer_columns(c), c.state, c.vote, c.voted_at),
            )
            return cursor.lastrowid

        c.id = self.store.write(work)
        return c.id

    def save_answers(self, comparison: Comparison) -> None:
        """Both answers are in (or one failed): ready for a vote, or failed."""
        c = comparison
        failed = any(a is None or a.stop_reason == "error" for a in (c.answer_a, c.answer_b))
        stopped = any(a is not None and a.stop_reason == "stopped" for a in (c.answer_a, c.answer_b))
        c.state = "failed" if failed else "skipped" if stopped else "ready"
        text_a, text_b, detail_a, detail_b = _answer_columns(c)
        self.store.write(lambda conn: conn.execute(
            "UPDATE comparisons SET answer_a = ?, answer_b = ?, detail_a = ?, detail_b = ?, state = ?,"
            " settings = ? WHERE id = ?",
            (text_a, text_b, detail_a, detail_b, c.state, json.dumps(c.settings), c.id),
        ))

    def set_vote(self, comparison: Comparison, vote: str | None) -> None:
        """Record (or change) the vote; None passes it over ("skipped")."""
        if vote is not None and vote not in VOTES:
            raise ValueError(f"unknown vote {vote!r}")
        c = comparison
        c.vote, c.voted_at = vote, time.time()
        c.state = "voted" if vote else "skipped"
        self.store.write(lambda conn: conn.execute(
            "UPDATE comparisons SET vote = ?, voted_at = ?, state = ? WHERE id = ?", (c.vote, c.voted_at, c.state, c.id)
        ))

    def get(self, comparison_id: int) -> Comparison | None:
        rows = self.store.read("SELECT * FROM comparisons WHERE id = ?", (comparison_id,))
        return _from_row(rows[0]) if rows else None

    def pending(self) -> list[Comparison]:
        """Answered, not voted on yet: oldest first."""
        return self._where("state = 'ready'")

    def unfinished(self) -> list[Comparison]:
        """Asked, but the answers never all came (a crash, Ctrl+C): `arena run` finishes them."""
        return self._where("state = 'answering'")

    def all(self) -> list[Comparison]:
        return self._where("1")

    def _where(self, condition: str) -> list[Comparison]:
        return [_from_row(r) for r in self.store.read(f"SELECT * FROM comparisons WHERE {condition} ORDER BY id")]


def _answer_columns(c: Comparison) -> tuple:
    return (
        c.answer_a.text if c.answer_a else None, c.answer_b.text if c.answer_b else None,
        c.answer_a.detail_json() if c.answer_a else None, c.answer_b.detail_json() if c.answer_b else None,
    )


def _context_json(context: list[Message]) -> str:
    return json.dumps([{"role": m.role, "content": m.content} for m in context])


def _from_row(row: sqlite3.Row) -> Comparison:
    context = [Message(str(m.get("role", "user")), str(m.get("content", "")))
               for m in (_loads(row["context"], []) or []) if isinstance(m, dict)]
    return Comparison(
        pairing=row["pairing"], system_a=row["system_a"], system_b=row["system_b"], context=context,
        prompt=row["prompt"], settings=_loads(row["settings"]), seed=row["seed"], source=row["source"],
        answer_a=Answer.from_columns(row["answer_a"], row["detail_a"]),
        answer_b=Answer.from_columns(row["answer_b"], row["detail_b"]),
        state=row["state"], vote=row["vote"], voted_at=row["voted_at"], created_at=row["created_at"], id=row["id"],
    )


def _loads(text: str | None, empty=None):
    if not text:
        return {} if empty is None else empty
    try:
        return json.loads(text)
    except ValueError:
        return {} if empty is None else empty
