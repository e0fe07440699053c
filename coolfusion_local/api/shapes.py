"""OpenAI's response objects: chat completions, text completions, their stream chunks.

Each object may carry a `coolfusion` field: per chunk, which model won the
segment and how it was decided; on the last chunk (and on a whole response),
why the answer stopped and the answer's figures. Standard clients ignore
fields they do not know, so this costs them nothing.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

from ..engine import AnswerDone, AnswerReranked, SegmentChosen

# The engine's stop reasons that OpenAI calls "length"; every other one ends as "stop".
# The loop guard's stop ("loop") cut the answer short, as a limit does: "stop"
# would tell a client the answer is complete. `coolfusion.stop_reason` says which.
_LENGTH_REASONS = {"max_tokens", "context_full", "loop"}


def finish_reason(stop_reason: str) -> str:
    return "length" if stop_reason in _LENGTH_REASONS else "stop"


def segment_extra(event: SegmentChosen) -> dict:
    record = event.as_record()
    return {"segment": record["index"], **{key: record[key] for key in ("winner", "decision", "proposers")}}


def answer_extra(done: AnswerDone, reranked: AnswerReranked | None) -> dict:
    stats = done.stats
    extra = {
        "stop_reason": done.stop_reason,
        "mode": stats.mode,
        "segment_count": stats.segments,
        "wins": dict(stats.wins),
        "decisions": dict(stats.decisions),
        "seconds": round(stats.seconds, 3),
        "tokens_per_second": round(stats.tokens_per_second, 2),
    }
    sampling = getattr(stats, "sampling", None)  # the values used, with the seed drawn (when sampled)
    if sampling:
        extra["sampling"] = dict(sampling)
    if reranked is not None:
        extra["reranked"] = reranked.chosen
    return extra


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


@dataclass
class ResponseShape:
    """One response's identity and the objects that carry it, chat or plain completion."""

    model: str
    chat: bool
    id: str = field(default="")
    created: int = field(default_factory=lambda: int(time.time()))

    def __post_init__(self) -> None:
        self.id = ("chatcmpl-" if self.chat else "cmpl-") + secrets.token_hex(12)

    def _base(self, object_name: str) -> dict:
        return {"id": self.id, "object": object_name, "created": self.created, "model": self.model,
                "system_fingerprint": None}

    def whole(self, text: str, finish: str, usage_: dict, extra: dict) -> dict:
        if self.chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                      "finish_reason": finish}
            body = self._base("chat.completion")
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
            body = self._base("text_completion")
        return {**body, "choices": [choice], "usage": usage_, "coolfusion": extra}

    def chunk(self, text: str | None, finish: str | None = None, extra: dict | None = None, *,
              first: bool = False) -> dict:
        if self.chat:
            delta: dict = {"role": "assistant", "content": text or ""} if first else (
                {"content": text} if text is not None else {})
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            body = self._base("chat.completion.chunk")
        else:
            choice = {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}
            body = self._base("text_completion")
        body["choices"] = [choice]
        if extra is not None:
            body["coolfusion"] = extra
        return body

    def usage_chunk(self, usage_: dict) -> dict:
        """stream_options.include_usage: one last chunk with no choices and the usage."""
        body = self._base("chat.completion.chunk" if self.chat else "text_completion")
        return {**body, "choices": [], "usage": usage_}
