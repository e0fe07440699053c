"""Speculative drafting across vocabularies: greedy tokens worked out in batches, ahead of the rounds.

In a greedy round every model decodes its own next tokens one llama_decode
at a time, and most rounds end with every model writing the same words. So
the cheapest model (measured seconds per decode, not its place in
models.toml) drafts a few words ahead in its own tokens; the draft's text is
tokenised in every other model's vocabulary, and each of them checks the
whole draft in ONE batched decode: row i of the batch says whether guess
token i + 1 is that model's own argmax. The longest prefix that is the
model's own greedy path is kept as its hidden look-ahead (the cells of the
rejected tail are rolled back); the rounds then run exactly as before and
read those tokens instead of decoding them (`SourceModel.step`).

Nothing is decided differently: proposals, boundaries, vetoes and scores see
the very tokens each model would have decoded itself. A model whose greedy
path spells the draft's text with other tokens than the guess is simply not
helped past that point (it decodes as before).

What can differ is the arithmetic. llama.cpp picks its matrix kernels by
batch size, and on a CPU with repacked quantised weights a decode of 4 or
more tokens gives logits up to ~0.4 away from one-token decodes (llama.cpp
#27407): a near-tie between two tokens then flips, and the answer goes
another way from there (measured: 7 of 16 answers of 96 tokens differed
with drafts checked that way through whole answers, docs/eval-and-bench.md).
So the default, "auto", checks in decodes no larger than the model's
`exact_batch_size()` (measured once per model and machine: the largest
batch whose rows equal one-token rows bit for bit), and greedy output is unchanged token for token;
"batch" checks a whole draft in one decode, faster where large batches pay,
with those flips.

The draft grows with acceptance (up to `draft_max_segments` words, at most
MAX_DRAFT_SEGMENTS, and never past the room left in the drafter's context) and
shrinks when models reject it. Drafting stops for the rest of the answer when
the share of accepted guess tokens falls under a floor, or when checking
costs more per accepted token than the checking model's own one-token
decode (then drafting cannot pay on this machine). Sampling never drafts
(accepting sampled tokens would need the speculative-sampling rule), nor do
served members (their server decodes, not us).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from .boundary import last_char_boundary, word_boundaries
from .events import GenerationStats
from .members import Member

DRAFT_MODES = ("auto", "batch", "off")
DEFAULT_MAX_SEGMENTS = 2  # longer drafts waste more of the drafter than they save the lead (docs/eval-and-bench.md)
# A check takes at most MAX_GUESS_TOKENS guess tokens: words past about this many are drafted for
# nothing, and a large value drafted into the context's end. models.toml is checked against it.
MAX_DRAFT_SEGMENTS = 16
FIRST_SEGMENTS = 2  # words drafted in the first cycle of an answer
ACCEPTANCE_FLOOR = 0.3  # share of guess tokens accepted below which drafting stops
FLOOR_AFTER_CYCLES = 4  # cycles measured before the floor applies
MAX_GUESS_TOKENS = 48  # one batch, well within the 64 logits rows a decode may return
TOKENS_PER_WORD = 6  # bound on the drafter's tokens per drafted word (long numbers, code)
RETRY_AFTER_ANSWERS = 8  # answers without drafting, after it did not pay, before measuring again
ROOM_NEEDED = 160  # tokens of context left before drafting stops (the answer's reserve stays free)
DRAFT_RESERVE = 64  # tokens of the drafter's context a draft leaves free (fusion's ANSWER_RESERVE)


def words_in(text: bytes) -> int:
    return sum(1 for _ in word_boundaries(text))


def _guess(model, known: bytes, rest: bytes) -> list[int]:
    """`rest` in `model`'s tokens, as they would follow its look-ahead text `known`."""
    look_ahead = model.look_ahead
    whole = model.tokenize_exactly(known + rest) if known else None
    if whole is not None and whole[: len(look_ahead)] == look_ahead:
        return whole[len(look_ahead) :][:MAX_GUESS_TOKENS]
    return (model.tokenize_exactly(rest) or [])[:MAX_GUESS_TOKENS]


def draft_limit(model, segments: int) -> int:
    """The most look-ahead tokens a draft of `segments` words may reach in `model`: the words'
    bound, and never past the room left in its context (less the answer's reserve): a draft
    that ran into n_ctx would end the answer as "context_full" with room left for it."""
    room = model.n_ctx - model.committed_tokens - DRAFT_RESERVE
    return max(0, min(len(model.look_ahead) + segments * TOKENS_PER_WORD, room))


@dataclass
class DraftRecord:
    """Whether drafting paid for these models on this machine, kept across answers."""

    paid: bool | None = None  # None: not measured yet
    answers_since: int = 0  # answers without drafting since it last did not pay


@dataclass
class DraftSettings:
    mode: str = "auto"  # "auto" (exact checks) | "batch" (one decode per check) | "off"
    max_segments: int = DEFAULT_MAX_SEGMENTS


class Drafting:
    """One answer's drafting: who drafts, how far ahead, and whether it still pays."""

    def __init__(self, members: list["Member"], lead: "Member", mode: str, settings: DraftSettings,
                 stats: "GenerationStats", *, may_draft: bool, lead_first: bool):
        """`may_draft`: the mode allows it and the answer is greedy (sampling never drafts);
        `lead_first`: the mode's lead writes alone while it is sure (adaptive), so only it checks."""
        self.members, self.lead, self.stats = members, lead, stats
        self.lead_first = lead_first
        self.max_segments = min(settings.max_segments, MAX_DRAFT_SEGMENTS)  # models.toml checks it too
        self.segments = min(FIRST_SEGMENTS, self.max_segments)
        self.active = (
            settings.mode in ("auto", "batch") and may_draft and len(members) > 1
            and all(m.model.can_draft for m in members)
        )
        self.exact = settings.mode == "auto"
        self.record = lead.draft_records.setdefault((mode, settings.mode, tuple(m.name for m in members)), DraftRecord())
        if self.active and self.record.paid is False:
            self.record.answers_since += 1
            self.active = self.record.answers_since > RETRY_AFTER_ANSWERS  # else measure again now
        self.cycles = 0
        self.saved_seconds = 0.0  # what the checkers' accepted tokens would have cost decoded one by one
        self.drafter: "Member | None" = None
        self._drafter_read_before = 0  # the drafter's hidden_read when it was chosen

    def _choose_drafter(self) -> "Member | None":
        """The member with the cheapest measured decode; in adaptive mode only one cheaper than the lead."""
        speeds = {m.name: m.model.seconds_per_decode for m in self.members}
        if any(s is None for s in speeds.values()):
            return None  # not every model has decoded enough yet: the first rounds measure them
        candidates = [m for m in self.members if m is not self.lead] if self.lead_first else self.members
        fastest = min(candidates, key=lambda m: speeds[m.name])
        if self.lead_first and speeds[fastest.name] >= speeds[self.lead.name]:
            self.active = False  # checking the lead's words would cost more than the lead writing them
            return None
        self.stats.drafter = fastest.name
        self._drafter_read_before = fastest.model.hidden_read
        return fastest

    def before_round(self, answer: bytes, held: dict[str, int], room: int, lead_tokens_left: int) -> None:
        """Draft and check ahead when a model would otherwise decode this round token by token."""
        if not self.active or room < ROOM_NEEDED or lead_tokens_left < 2:
            return
        drafter = self.drafter = self.drafter or self._choose_drafter()
        if drafter is None:
            return
        # Cool mode: every model checks. Adaptive: the lead writes alone while it is confident.
        checkers = [self.lead] if self.lead_first else [m for m in self.members if m is not drafter]
        behind = answer[held[drafter.name] :]  # adaptive: text the drafter has not taken in yet
        drafted = drafter.model.detokenize(drafter.model.look_ahead)
        if not drafted.startswith(behind):
            return  # its own path left the answer; it drafts again once it has caught up
        known = {m.name: m.model.detokenize(m.model.look_ahead) for m in checkers}
        needy = [m for m in checkers if words_in(m.model.detokenize(m.model.hidden)) == 0]
        draft = drafted[len(behind) :]
        useful = [m for m in needy if self._may_help(m, known[m.name], draft)]
        if not useful:
            return
        started = time.perf_counter()
        base = len(behind) + max(len(known[m.name]) for m in useful)
        drafter.model.draft(lambda text: words_in(text[base:]) >= self.segments,
                            limit=draft_limit(drafter.model, self.segments))
        self.stats.draft_seconds += time.perf_counter() - started
        draft = drafter.model.detokenize(drafter.model.look_ahead)[len(behind) :]
        draft = draft[: last_char_boundary(draft)]
        if self.exact:  # measured once per model and machine, and not a cost of this check
            for member in useful:
                member.model.exact_batch_size()
        started = time.perf_counter()
        checked = accepted = 0
        for member in useful:
            mine = known[member.name]
            if not draft.startswith(mine) or len(draft) <= len(mine):
                continue
            guess = _guess(member.model, mine, draft[len(mine) :])
            if not guess or guess[0] != member.model.next_greedy_token():
                continue  # wrong from its first token: nothing to check (and nothing decoded)
            chunk = member.model.exact_batch_size() if self.exact else len(guess)
            kept = member.model.check_draft(guess, chunk)
            accepted += kept
            checked += len(guess)
            self.saved_seconds += kept * (member.model.seconds_per_decode or 0.0)
        self.stats.check_seconds += time.perf_counter() - started
        if checked:
            self._adapt(checked, accepted)

    @staticmethod
    def _may_help(member: "Member", known: bytes, draft: bytes) -> bool:
        """Whether the draft (once long enough) can match the member's own greedy path.

        Its look-ahead must be a prefix of the draft or the other way round;
        where the draft already goes past it, the draft's next token in the
        member's vocabulary must be the member's own next greedy token, which
        is known without decoding.
        """
        if known.startswith(draft) and len(known) >= len(draft):
            return True
        if not draft.startswith(known):
            return False
        rest = draft[len(known) : len(known) + last_char_boundary(draft[len(known) :])]
        guess = _guess(member.model, known, rest) if rest else []
        return not guess or guess[0] == member.model.next_greedy_token()

    def _adapt(self, checked: int, accepted: int) -> None:
        """Draft further while the checks accept it all, shorter when they reject most of it."""
        self.cycles += 1
        self.stats.draft_cycles += 1
        self.stats.draft_offered += checked
        self.stats.draft_accepted += accepted
        if accepted == checked:
            self.segments = min(self.segments + 1, self.max_segments)
        elif accepted < checked / 2:
            self.segments = max(1, self.segments - 1)
        if self.cycles >= FLOOR_AFTER_CYCLES and (
            self.stats.draft_accepted < ACCEPTANCE_FLOOR * self.stats.draft_offered
            or self.stats.check_seconds + self.stats.draft_seconds > self.saved_seconds + self._drafter_credit()
        ):
            self.active = False  # it does not pay here: off for this answer and the next few
            self.record.paid, self.record.answers_since = False, 0

    def _drafter_credit(self) -> float:
        """Cool mode: what the drafted tokens its own proposals then read would have cost anyway.

        Every model proposes in every cool round, so those decodes were due;
        only the drafted tokens thrown away (past the word where the others
        part from the drafter) are drafting's own cost. In adaptive mode the
        drafter would mostly not have decoded at all (it catches up in batches).
        """
        if self.lead_first or self.drafter is None:
            return 0.0
        read = self.drafter.model.hidden_read - self._drafter_read_before
        return read * (self.drafter.model.seconds_per_decode or 0.0)

    def finish(self) -> None:
        """At the end of an answer: drafting that ran its course paid."""
        if self.active and self.cycles >= FLOOR_AFTER_CYCLES:
            self.record.paid = True
