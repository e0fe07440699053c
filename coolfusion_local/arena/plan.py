"""What `coolfusion arena run` still has to answer: every prompt with every pairing, less what is done.

A comparison made by an earlier run of the same prompt (and system message) and
pairing counts as done whatever its vote; one left "answering" by an interrupted
run is finished first, so a run can be stopped and started again at will.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..engine.events import Message
from .comparisons import Comparison
from .pairings import Pairing
from .prompts import ArenaPrompt


@dataclass(frozen=True)
class Job:
    prompt: ArenaPrompt
    pairing: Pairing

    @property
    def context(self) -> list[Message]:
        return [Message("system", self.prompt.system)] if self.prompt.system else []


def _key(pairing: str, context: Sequence[Message], prompt: str) -> tuple:
    return pairing, tuple((m.role, m.content) for m in context), prompt


def plan_jobs(prompts: Sequence[ArenaPrompt], pairings: Sequence[Pairing], existing: Sequence[Comparison]) -> list[Job]:
    done = {_key(c.pairing, c.context, c.prompt) for c in existing if c.source == "run"}
    jobs = []
    for prompt in prompts:
        for pairing in pairings:
            job = Job(prompt, pairing)
            if _key(pairing.label, job.context, prompt.text) not in done:
                jobs.append(job)
                done.add(_key(pairing.label, job.context, prompt.text))  # a prompt listed twice runs once
    return jobs
