"""What the engine tells its consumers: a stream of small typed records.

The CLI, the chat UI, `eval` and `bench` all consume the same events, so every
figure a user sees (who won a segment, tokens/s, why an answer stopped) is
computed once, here, and carried on the event that reports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Message:
    """One turn of a conversation, as every source model sees it."""

    role: str  # "system" | "user" | "assistant"
    content: str


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class ModelLoadStarted:
    model: str


@dataclass(frozen=True)
class ModelLoaded:
    model: str
    seconds: float
    n_gpu_layers: int  # layers actually offloaded (0 on a CPU-only build)
    n_layers: int
    n_ctx: int
    vocab_size: int
    chat_template: str  # "gguf", "plain" or "override"
    notices: tuple[str, ...] = ()  # e.g. a GPU asked for on a CPU-only build
    # llama.cpp's extra CPU buffer types (AMX, repacking) for this model: "on (why)" / "off (why)";
    # None for a served model (its server decides).
    cpu_extra_buffers: str | None = None
    device: str | None = None  # the GPU device holding its offloaded layers, e.g. "Vulkan0 (llvmpipe ...)"


@dataclass(frozen=True)
class ModelLoadFailed:
    model: str
    reason: str  # one line, written for the user


@dataclass(frozen=True)
class ModelLoadWaiting:
    """The load waits on something that may take a while (the AMX probe's test process): a line
    the CLI and the chat show at once, so a long wait is never silence."""

    model: str
    message: str


LoadEvent = ModelLoadStarted | ModelLoadWaiting | ModelLoaded | ModelLoadFailed


# --------------------------------------------------------------------------- generation


@dataclass(frozen=True)
class Candidate:
    """One source model's greedy proposal for the next segment."""

    model: str
    text: str
    ends_answer: bool  # the model wants to end its turn after `text`
    tokens: int  # how many of its own tokens the proposal took


@dataclass(frozen=True)
class SegmentChosen:
    """A segment was appended to the shared answer."""

    index: int
    text: str
    winner: str  # the model whose candidate won (first proposer on ties)
    proposers: tuple[str, ...]  # every model that proposed exactly this segment
    candidates: dict[str, Candidate]  # by proposing model
    # scorer -> proposer -> mean token NLL of the proposer's candidate in the
    # scorer's own tokens. Empty when no cross-scoring was needed.
    scores: dict[str, dict[str, float]]
    # How the segment was decided: "agreed" (all proposals equal), "confident"
    # (adaptive mode accepted one model's confident proposal), "scored"
    # (cross-scored rerank), "vetoed" (the lead's veto settled it before any
    # scoring: the others' first tokens alone were too unlikely for it), "sure"
    # (the lead-sure guard kept the lead's own: it was sure where the others
    # part from it, engine/guard.py; in adaptive mode the others were not
    # asked), "number" (the guard kept the lead's own: they part inside a number),
    # "forced" (no common boundary within the bound), "unlooped" (the loop
    # guard passed over a candidate that would repeat the answer verbatim),
    # "solo" (a single model).
    decision: str
    ends_answer: bool
    seconds: float
    # The winner's segment was cut at the proposal bound, not at a boundary the
    # models share (counted as "forced" in GenerationStats.decisions beside `decision`).
    forced: bool = False
    # proposer -> the lead's top-1 − top-2 probability margin at its token where
    # that proposer's candidate parts from the lead's (rounds the guard judged).
    lead_margins: dict[str, float] = field(default_factory=dict)

    def as_record(self) -> dict:
        """The segment as plain JSON-ready data; `generate --json`, the API, eval's log and the
        chat's store each keep the part of it they need."""
        return {
            "index": self.index,
            "text": self.text,
            "winner": self.winner,
            "proposers": list(self.proposers),
            "decision": self.decision,
            "candidates": {name: c.text for name, c in self.candidates.items()},
            "ends": {name: c.ends_answer for name, c in self.candidates.items() if c.ends_answer},
            "scores": {scorer: dict(row) for scorer, row in self.scores.items()},
            "seconds": round(self.seconds, 4),
            "forced": self.forced,
            "lead_margins": dict(self.lead_margins),
        }


@dataclass(frozen=True)
class Notice:
    """Something the user should know that does not stop the answer."""

    message: str


@dataclass(frozen=True)
class SoloAnswerStarted:
    """Cool+R: one source model starts writing its own whole answer."""

    model: str


@dataclass(frozen=True)
class SoloTextDelta:
    """Cool+R / compare: a piece of a source model's solo answer."""

    model: str
    text: str


@dataclass(frozen=True)
class AnswerReranked:
    """Cool+R: the whole answers were scored; `chosen` is "fused" or a model name."""

    chosen: str
    text: str
    # answer source ("fused" or a model name) -> scorer -> mean token NLL
    scores: dict[str, dict[str, float]]
    answers: dict[str, str]


@dataclass
class GenerationStats:
    mode: str = "cool"
    segments: int = 0
    answer_tokens: int = 0  # in the tokens of the lead model; max_tokens caps this count
    prompt_tokens: int = 0  # the prompt the lead read, in its tokens (after old turns were left out to fit)
    lead: str = ""  # the model that led (engine/lead.py)
    seconds: float = 0.0
    prompt_seconds: float = 0.0  # evaluating the prompt before the first segment
    tokens_per_model: dict[str, int] = field(default_factory=dict)
    wins: dict[str, int] = field(default_factory=dict)
    decisions: dict[str, int] = field(default_factory=dict)
    # Where the time went, in seconds.
    propose_seconds: float = 0.0
    score_seconds: float = 0.0
    boundary_seconds: float = 0.0  # tokenizer calls: boundaries, re-tokenising
    commit_seconds: float = 0.0  # appending the winner to every model (decoding it where not yet done)
    catch_up_seconds: float = 0.0  # adaptive: lagging models reading the text they skipped
    rerank_seconds: float = 0.0
    # Drafting (engine/drafting.py): the cheapest model decodes a few words ahead,
    # the others check them in one batch each.
    draft_seconds: float = 0.0  # the drafter decoding ahead
    check_seconds: float = 0.0  # the others' batched checks of the draft
    drafter: str = ""  # "" when no model drafted
    draft_cycles: int = 0
    draft_offered: int = 0  # guess tokens the checking models were given
    draft_accepted: int = 0  # of those, the ones that were their own greedy tokens
    lead_decodes: int = 0  # llama_decode calls of the lead for this answer (a batch counts once)
    sampling: dict = field(default_factory=dict)  # Sampling.as_dict() of the answer, its seed included

    @property
    def generate_seconds(self) -> float:
        return max(self.seconds - self.prompt_seconds, 1e-9)

    @property
    def tokens_per_second(self) -> float:
        return self.answer_tokens / self.generate_seconds

    @property
    def segments_per_second(self) -> float:
        return self.segments / self.generate_seconds

    @property
    def draft_acceptance(self) -> float | None:
        """Share of drafted guess tokens the checking models accepted; None when nothing was drafted."""
        return self.draft_accepted / self.draft_offered if self.draft_offered else None

    @property
    def bookkeeping_seconds(self) -> float:
        spent = (
            self.propose_seconds + self.score_seconds + self.boundary_seconds + self.commit_seconds
            + self.catch_up_seconds + self.rerank_seconds + self.draft_seconds + self.check_seconds
        )
        return max(self.generate_seconds - spent, 0.0)

    def as_dict(self) -> dict:
        return {
            "mode": self.mode,
            "lead": self.lead,
            "segments": self.segments,
            "answer_tokens": self.answer_tokens,
            "prompt_tokens": self.prompt_tokens,
            "seconds": round(self.seconds, 4),
            "prompt_seconds": round(self.prompt_seconds, 4),
            "tokens_per_second": round(self.tokens_per_second, 3),
            "segments_per_second": round(self.segments_per_second, 3),
            "tokens_per_model": dict(self.tokens_per_model),
            "wins": dict(self.wins),
            "decisions": dict(self.decisions),
            "propose_seconds": round(self.propose_seconds, 4),
            "score_seconds": round(self.score_seconds, 4),
            "boundary_seconds": round(self.boundary_seconds, 4),
            "commit_seconds": round(self.commit_seconds, 4),
            "catch_up_seconds": round(self.catch_up_seconds, 4),
            "rerank_seconds": round(self.rerank_seconds, 4),
            "draft_seconds": round(self.draft_seconds, 4),
            "check_seconds": round(self.check_seconds, 4),
            "bookkeeping_seconds": round(self.bookkeeping_seconds, 4),
            "sampling": dict(self.sampling),
            "draft": {
                "drafter": self.drafter or None,
                "cycles": self.draft_cycles,
                "offered": self.draft_offered,
                "accepted": self.draft_accepted,
                "acceptance": None if self.draft_acceptance is None else round(self.draft_acceptance, 3),
            },
            "lead_decodes": self.lead_decodes,
        }


@dataclass(frozen=True)
class AnswerDone:
    """The last event of every answer."""

    text: str  # the final answer (after Cool+R, the reranked one)
    # "eos" | "stop_string" | "max_tokens" | "loop" (the loop guard ended it)
    # | "stopped" | "context_full" | "error"
    stop_reason: str
    stats: GenerationStats
    error: str | None = None  # one line, when stop_reason == "error"
    # The member whose failure ended the answer (a served model's server went
    # away, timed out or answered wrongly), so a UI can mark it.
    failed_model: str | None = None


GenerationEvent = (
    SegmentChosen | Notice | SoloAnswerStarted | SoloTextDelta | AnswerReranked | AnswerDone
)
