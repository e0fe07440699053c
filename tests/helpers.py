"""Small helpers many test modules share (the fixtures they share live in conftest.py)."""

from __future__ import annotations

import socket
from typing import NamedTuple

from coolfusion_local.engine.events import AnswerDone, SegmentChosen
from coolfusion_local.engine.fusion import generate
from coolfusion_local.engine.modes import answer_settings


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Answer(NamedTuple):
    events: list
    segments: list[SegmentChosen]
    done: AnswerDone


def answer_events(members, messages, runner=generate, *, fresh: bool = False, **settings) -> Answer:
    """Run one answer of `members` to its end and collect its events.

    `settings` are `answer_settings`' (engine/modes.py): `mode` and the rest.
    `fresh`: every model reads its prompt afresh, so the answer does not
    depend on what ran before (a prompt cached in another batch split differs
    in the last bits of a logit, and a near-tie may then flip).
    """
    if fresh:
        for member in members:
            member.model.forget()
    events = list(runner(members, messages, answer_settings(**settings)))
    assert isinstance(events[-1], AnswerDone), events[-1]
    return Answer(events, [e for e in events if isinstance(e, SegmentChosen)], events[-1])
