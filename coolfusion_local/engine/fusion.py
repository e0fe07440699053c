"""The Cool-Fusion loop: propose, cross-score, commit, one segment at a time.

Each round every source model greedily writes its own next segment (until a
word boundary all tokenizers share), every model scores every distinct
candidate in its own tokens, and the candidate with the best combined score
is appended to every model's state. Rounds where all models propose the same
text skip scoring ("agreed"), and adaptive mode also skips it when the
strongest model is confident. The loop is a generator of events, so the CLI,
the chat UI, eval and bench all watch the same stream.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Iterator, Sequence

from ..errors import CoolfusionError
from .boundary import BoundaryDetector, forced_cut, last_char_boundary
from .drafting import DraftSettings, Drafting
from .guard import Parting, parting_token, parts_in_number, token_ends
from .events import AnswerDone, Candidate, GenerationStats, Message, Notice, SegmentChosen
from .lead import choose_lead
from .repetition import completes_loop
from .sampling import GREEDY, Sampling
from .scoring import ScorePolicy
from .shown_text import ShownText
from .members import ContextFull, Member, Proposal, Scored, TokenPicker

MAX_SEGMENT_TOKENS = 16  # force a cut when tokenizers never agree (long URLs, '=====')
ANSWER_RESERVE = 64  # tokens kept free in every context for the answer's last segments


@dataclass
class AnswerSettings:
    """How one answer is generated (models.toml's [fusion] table, after the caller's overrides).

    Build it with engine/modes.py's `answer_settings(mode, ...)`: the mode's
    flags come from the registry, so they have no defaults here.
    """

    mode: str = field(kw_only=True)  # the mode's name in engine/modes.py (in the stats; Cool+R runs "cool" passes)
    lead_first: bool = field(kw_only=True)  # the lead proposes alone; the others only where it is unsure
    may_draft: bool = field(kw_only=True)  # greedy drafting may run (engine/drafting.py)
    max_tokens: int = 512
    stop: Sequence[str] = ()
    context_words: int = 4
    policy: ScorePolicy = field(default_factory=ScorePolicy)
    sampling: Sampling = GREEDY
    # Keep a verbatim loop (engine/repetition.py) from winning a round; end
    # the answer with stop reason "loop" when every candidate would make one.
    loop_guard: bool = False
    # Greedy cool/adaptive: the cheapest model drafts ahead, the others check in one batch
    # (engine/drafting.py); the output is the same either way.
    draft: DraftSettings = field(default_factory=DraftSettings)


def prompt_tokens(member: Member, messages: list[Message]) -> list[int]:
    """The member's prompt: template text may hold special tokens, message text never."""
    model = member.model
    tokens: list[int] = []
    for part in member.chat.render(messages):
        tokens += model.tokenize(part.text.encode("utf-8"), special=not part.is_message)
    if model.add_bos and (not tokens or tokens[0] != model.bos_token):
        tokens.insert(0, model.bos_token)
    return tokens


def fit_prompts(members: list[Member], messages: list[Message], reserve: int) -> tuple[dict[str, list[int]], int]:
    """Prompt tokens per member, leaving out the oldest turns until every context fits.

    Returns the prompts and how many messages were left out. The system
    message and the last message are always kept; turns go in whole
    exchanges (a user message and the reply to it). The fewest exchanges to
    leave out are found by bisection: a long chat costs a handful of renders,
    not one per exchange.
    """
    # Exchanges that may be left out, oldest first: lists of message indexes.
    units: list[list[int]] = []
    for index, message in enumerate(messages[:-1]):
        if message.role == "system":
            continue
        if message.role == "assistant" and units and messages[units[-1][-1]].role == "user" and len(units[-1]) == 1:
            units[-1].append(index)
        else:
            units.append([index])

    def attempt(drop: int) -> tuple[dict[str, list[int]], list[Member], int]:
        left_out = {i for unit in units[:drop] for i in unit}
        kept = [m for i, m in enumerate(messages) if i not in left_out]
        prompts = {m.name: prompt_tokens(m, kept) for m in members}
        too_long = [m for m in members if len(prompts[m.name]) + reserve > m.model.n_ctx]
        return prompts, too_long, len(left_out)

    prompts, too_long, dropped = attempt(0)
    if not too_long:
        return prompts, 0
    prompts, too_long, dropped = attempt(len(units))
    if too_long:
        worst = too_long[0]
        raise ContextFull(
            f"the message takes {len(prompts[worst.name])} tokens, more than model "
            f"{worst.name!r} holds ({worst.model.n_ctx}); shorten it or raise n_ctx"
        )
    fits_with, fails_with = len(units), 0
    best = (prompts, dropped)
    while fits_with - fails_with > 1:
        middle = (fits_with + fails_with) // 2
        prompts, too_long, dropped = attempt(middle)
        if too_long:
            fails_with = middle
        else:
            fits_with, best = middle, (prompts, dropped)
    return best


def _propose(
    member: Member,
    detector: BoundaryDetector,
    left: bytes,
    room: int,
    stats: GenerationStats,
    sampler: TokenPicker | None = None,
) -> Proposal:
    """The member's own tokens (greedy, or from its sampler) until the shortest common word boundary."""
    model = member.model
    steps = model.pending  # look-ahead from the last round, if its proposal won
    text = b""
    token_ends: list[int] = []  # byte offset in `text` where each step's token ends
    for step in steps:
        text += model.piece(step.token)
        token_ends.append(len(text))

    def proposal(count: int, ends: bool = False, forced: bool = False, end_nll: float = 0.0) -> Proposal:
        used = steps[:count]
        segment = text[: token_ends[count - 1]] if count else b""
        return Proposal(member, segment, [s.token for s in used], [s.nll for s in used], ends, forced, end_nll)

    limit = min(MAX_SEGMENT_TOKENS, room)
    while True:
        started = time.perf_counter()
        cut = detector.first_boundary(text, left=left, allowed=set(token_ends))
        stats.boundary_seconds += time.perf_counter() - started
        if cut is not None:
            return proposal(token_ends.index(cut) + 1)
        if len(steps) >= limit:
            # No common boundary within the bound: cut after the last whole character
            # (before it when it is an emoji or a flag's first half, which may go on).
            whole = forced_cut(text)
            return proposal(max((i + 1 for i, end in enumerate(token_ends) if end <= whole), default=1), forced=True)
        started = time.perf_counter()
        step = model.step(sampler)
        stats.propose_seconds += time.perf_counter() - started
        if step.ends:
            return proposal(len(steps), ends=True, end_nll=model.end_nll())
        steps.append(step)
        text += model.piece(step.token)
        token_ends.append(len(text))


def lead_member(members: Sequence[Member]) -> Member:
    """The model trusted most: the strongest by engine/lead.py's rule, the first listed on ties."""
    lead = choose_lead([m.standing for m in members])
    return next(m for m in members if m.standing is lead)


@dataclass
class _Cut:
    """The part of a round's winner that fits in the answer's token limit."""

    text: bytes  # appended to the answer; may be empty
    lead_start: int  # where the lead's tokens for it go, and those tokens
    lead_tokens: list[int]


class _Round:
    """What one round produced: proposals, scores and the winner."""

    def __init__(self, proposals: list[Proposal]):
        self.proposals = proposals
        self.by_key: dict[tuple[bytes, bool], list[Proposal]] = {}
        for proposal in proposals:
            self.by_key.setdefault(proposal.key, []).append(proposal)
        self.keys = list(self.by_key)
        self.scores: dict[str, dict[str, float]] = {}
        self.continuations: dict[tuple[str, tuple[bytes, bool]], tuple[int, list[int]]] = {}
        self.scored: dict[tuple[str, tuple[bytes, bool]], Scored] = {}
        self.partings: dict[tuple[bytes, bool], Parting] = {}  # other candidates vs the lead's (guard.py)
        self.decision = ""
        self.winner_key: tuple[bytes, bool] | None = None


class _FusionRun:
    """One answer being fused: the shared text and every model's place in it."""

    def __init__(self, members: list[Member], settings: AnswerSettings, stats: GenerationStats):
        self.members = members
        self.settings = settings
        self.stats = stats
        self.lead = lead_member(members)
        self.answer = bytearray()
        # Bytes of the answer each model holds; in adaptive mode the others
        # lag behind the lead while it is confident and catch up in one batch.
        self.held = {m.name: 0 for m in members}
        self.detector = BoundaryDetector([m.model for m in members])
        # Temperature 0 is plain greedy decoding, the penalty included: argmax, as always.
        self.samplers = {
            m.name: None if settings.sampling.greedy else m.model.sampler(settings.sampling.for_model(m.name, m.temperature))
            for m in members
        }
        self.drafting = Drafting(members, self.lead, settings.mode, settings.draft, stats,
                                 may_draft=settings.may_draft and settings.sampling.greedy, lead_first=settings.lead_first)

    def close(self) -> None:
        self.drafting.finish()
        for sampler in self.samplers.values():
            if sampler is not None:
                sampler.close()

    def catch_up(self, member: Member) -> None:
        behind = bytes(self.answer[self.held[member.name] :])
        if behind:
            # A lagging drafter's drafts have served as guesses; catching up takes the text
            # the way it would without them, in one batch (the same numbers, see drafting.py).
            member.model.drop_hidden()
            started = time.perf_counter()
            start, tokens = member.model.continuation(behind, self.settings.context_words)
            member.model.commit(start, tokens)
            self.stats.catch_up_seconds += time.perf_counter() - started
            self.held[member.name] = len(self.answer)

    def propose(self, member: Member, room: int) -> Proposal:
        self.catch_up(member)
        return _propose(member, self.detector, bytes(self.answer[-64:]), room, self.stats, self.samplers[member.name])

    def play_round(self, room: int) -> _Round:
        members, settings = self.members, self.settings
        lead_left = settings.max_tokens - len(self.lead.model.answer_tokens)
        self.drafting.before_round(bytes(self.answer), self.held, room, lead_left)
        if len(members) == 1:
            current = _Round([self.propose(members[0], room)])
            current.decision, current.winner_key = "solo", current.keys[0]
            return current
        if settings.lead_first:
            lead_proposal = self.propose(self.lead, room)
            if self.lead_sure_throughout(lead_proposal):
                # No candidate could win against it (guard.py): the others need not propose.
                current = _Round([lead_proposal])
                current.decision, current.winner_key = "sure", lead_proposal.key
                return current
            if settings.policy.is_confident(lead_proposal):
                current = _Round([lead_proposal])
                current.decision, current.winner_key = "confident", lead_proposal.key
                return current
            others = [self.propose(m, room) for m in members if m is not self.lead]
            current = _Round([lead_proposal, *others])
        else:
            current = _Round([self.propose(m, room) for m in members])
        if len(current.keys) == 1:
            current.decision, current.winner_key = "agreed", current.keys[0]
        else:
            self.cross_score(current)
        return current

    def lead_margins(self, proposal: Proposal) -> list[float]:
        """The lead's top-1 − top-2 margin at each token of its proposal and after them.

        A lead that cannot tell (a served model: `top_margin` 0) counts as
        unsure everywhere, so its partners are heard as they were before the guard.
        A sampling lead is judged by the token it drew, in the distribution it drew
        from: where it drew another than its argmax, it was not sure.
        """
        if proposal.margins is None:
            sampler = self.samplers[self.lead.name]
            count = len(proposal.tokens) + 1
            started = time.perf_counter()
            proposal.margins = [self.lead.model.top_margin(i, sampler) for i in range(count)]
            self.stats.boundary_seconds += time.perf_counter() - started
        return proposal.margins

    def lead_sure_throughout(self, proposal: Proposal) -> bool:
        """Whether the lead is sure at every token a candidate could part from its proposal."""
        return all(self.settings.policy.lead_is_sure(m) for m in self.lead_margins(proposal))

    def parting(self, lead_proposal: Proposal, key: tuple[bytes, bool]) -> Parting:
        """Where candidate `key` parts from the lead's proposal, and whether the guard lets it win."""
        policy = self.settings.policy
        ends = token_ends([self.lead.model.piece(t) for t in lead_proposal.tokens])
        margin = self.lead_margins(lead_proposal)[parting_token(lead_proposal.text, ends, key[0])]
        in_number = parts_in_number(bytes(self.answer[-8:]), lead_proposal.text, key[0])
        allowed = not policy.lead_is_sure(margin) and not (policy.keep_numbers and in_number)
        return Parting(margin, in_number, allowed)

    def guarded_keys(self, current: _Round, lead_proposal: Proposal) -> list[tuple[bytes, bool]]:
        """The round's candidates the guard lets compete: the lead's, and those parting where it is unsure."""
        keys = []
        for key in current.keys:
            if key != lead_proposal.key:
                current.partings[key] = parting = self.parting(lead_proposal, key)
                if not parting.allowed:
                    continue
            keys.append(key)
        return keys

    def cross_score(self, current: _Round, keys: list[tuple[bytes, bool]] | None = None) -> None:
        """Every model scores every distinct candidate the guard lets compete (or just `keys`,
        the loop guard's, unguarded); the policy picks the winner."""
        stats, settings = self.stats, self.settings
        lead_proposal = next(p for p in current.proposals if p.member is self.lead)
        if keys is None:
            keys = self.guarded_keys(current, lead_proposal)
            if keys == [lead_proposal.key]:
                in_numbers = all(p.in_number and not p.allowed for p in current.partings.values())
                current.decision = "number" if in_numbers and settings.policy.keep_numbers else "sure"
                current.winner_key = lead_proposal.key
                return
            if self.lead_vetoes_all(current, lead_proposal, keys):
                return
        lead_key = lead_proposal.key if lead_proposal.key in keys else None
        mean_nll: dict[str, dict[tuple[bytes, bool], float]] = {}
        lead_totals: dict[tuple[bytes, bool], float] = {}
        for member in self.members:
            started = time.perf_counter()
            row: dict[tuple[bytes, bool], float] = {}
            totals: dict[tuple[bytes, bool], float] = {}
            requests, request_keys = [], []
            for key in keys:
                start, tokens = self.continuation(current, member, key)
                mine = next((p for p in current.by_key[key] if p.member is member), None)
                if mine is not None and start == member.model.committed_tokens and tokens == mine.tokens:
                    total, count = mine.own_nll()  # scored while proposing
                    row[key], totals[key] = total / max(count, 1), total
                else:
                    requests.append((start, tokens, key[1]))
                    request_keys.append(key)
            stats.boundary_seconds += time.perf_counter() - started
            started = time.perf_counter()
            results = member.model.score(requests) if requests else []
            stats.score_seconds += time.perf_counter() - started
            for key, result in zip(request_keys, results):
                current.scored[(member.name, key)] = result
                row[key], totals[key] = result.mean_nll, result.nll_sum
            mean_nll[member.name] = row
            if member is self.lead:
                lead_totals = totals
        current.decision = "scored"
        current.winner_key = settings.policy.choose(self.members, keys, mean_nll, self.lead, lead_key, lead_totals)
        first_proposer = {key: current.by_key[key][0].member.name for key in keys}
        current.scores = {
            scorer: {first_proposer[key]: round(value, 5) for key, value in row.items()}
            for scorer, row in mean_nll.items()
        }

    def avoid_loop(self, current: _Round, room: int) -> _Round | None:
        """The round with a winner that makes no verbatim loop; None when every candidate would.

        The best candidate that does not loop wins instead, by the same rule
        among those left. In adaptive mode a confident lead that loops lets the
        others propose after all.
        """
        text = self.answer.decode("utf-8", errors="replace")

        def loops(key: tuple[bytes, bool]) -> bool:
            return completes_loop(text, key[0].decode("utf-8", errors="replace"))

        if not loops(current.winner_key):
            return current
        if current.decision in ("confident", "sure") and len(current.proposals) == 1:
            others = [self.propose(m, room) for m in self.members if m is not self.lead]
            current = _Round([*current.proposals, *others])
        fresh = [key for key in current.keys if not loops(key)]
        if not fresh:
            return None
        if len(fresh) == 1:
            current.winner_key = fresh[0]
        else:
            self.cross_score(current, fresh)
        current.decision = "unlooped"
        return current

    def continuation(self, current: _Round, member: Member, key: tuple[bytes, bool]) -> tuple[int, list[int]]:
        """`member`'s tokens for candidate `key`, worked out once per round."""
        found = current.continuations.get((member.name, key))
        if found is None:
            found = current.continuations[(member.name, key)] = member.model.continuation(
                key[0], self.settings.context_words
            )
        return found

    def lead_vetoes_all(self, current: _Round, lead_proposal: Proposal, keys: list[tuple[bytes, bool]]) -> bool:
        """Settle the round without scoring when the lead vetoes every other candidate.

        A segment is never more probable than its first token, and the lead
        already has that token's probability (the row it proposed from). When
        that alone puts every other candidate past the veto, the lead's own
        wins whatever the rest would say, so no model decodes anything to
        score: the same winner as full scoring, for less work.
        """
        policy, model = self.settings.policy, self.lead.model
        own_total, _ = lead_proposal.own_nll()
        started = time.perf_counter()
        settled = 0
        for key in keys:
            if key == lead_proposal.key:
                continue
            start, tokens = self.continuation(current, self.lead, key)
            if start != model.committed_tokens or not tokens:
                break
            if not policy.vetoed_for_sure(model.next_token_nll(tokens[0]), own_total):
                break
            settled += 1
        self.stats.boundary_seconds += time.perf_counter() - started
        if settled != len(keys) - 1:
            return False
        current.decision, current.winner_key = "vetoed", lead_proposal.key
        return True

    def cut_at_limit(self, current: _Round, max_tokens: int) -> _Cut | None:
        """The part of the winner that keeps the answer within `max_tokens`; None when all of it fits.

        The limit counts the lead's tokens, as `GenerationStats.answer_tokens`
        does. The cut falls after a whole token of the lead and a whole UTF-8
        character, so every model can take in the same text.
        """
        lead = self.lead.model
        own = next((p for p in current.by_key[current.winner_key] if p.member is self.lead), None)
        if own is not None:  # its own proposal won: its tokens follow the shared text
            start, tokens = lead.committed_tokens, own.tokens
        else:
            start, tokens = self.continuation(current, self.lead, current.winner_key)
        answer = lead.answer_tokens
        kept = start - (lead.committed_tokens - len(answer))  # answer tokens before the re-tokenised join
        allowed = max_tokens - kept
        if len(tokens) <= allowed:
            return None
        for count in range(max(allowed, 0), 0, -1):
            whole = lead.detokenize(answer[:kept] + tokens[:count])
            if len(whole) > len(self.answer) and last_char_boundary(whole) == len(whole):
                return _Cut(whole[len(self.answer) :], start, tokens[:count])
        return _Cut(b"", start, [])  # not one whole character fits

    def commit_cut(self, current: _Round, cut: _Cut) -> None:
        """Append only the part of the winner that fits the limit, to every model that took part."""
        started = time.perf_counter()
        if cut.text:
            for member in self._taking_part(current):
                if member is self.lead:  # its exact tokens: the count stays within the limit
                    member.model.commit(cut.lead_start, cut.lead_tokens)
                else:
                    start, tokens = member.model.continuation(cut.text, self.settings.context_words)
                    member.model.commit(start, tokens)
                self.held[member.name] = len(self.answer) + len(cut.text)
            self.answer += cut.text
        self.stats.commit_seconds += time.perf_counter() - started

    def _taking_part(self, current: _Round) -> list[Member]:
        """The models that proposed this round (in adaptive mode the others lag behind a confident lead)."""
        names = {p.member.name for p in current.proposals}
        return [m for m in self.members if m.name in names]

    def commit(self, current: _Round) -> None:
        """Append the winner to every model that took part in the round."""
        started = time.perf_counter()
        text, _ = current.winner_key
        winners = current.by_key[current.winner_key]
        for member in self._taking_part(current):
            mine = next((p for p in winners if p.member is member), None)
            if mine is not None:
                member.model.commit(member.model.committed_tokens, mine.tokens)
            else:
                start, tokens = self.continuation(current, member, current.winner_key)
                member.model.commit(start, tokens, current.scored.get((member.name, current.winner_key)))
            self.held[member.name] = len(self.answer) + len(text)
        self.answer += text
        self.stats.commit_seconds += time.perf_counter() - started


def generate(
    members: list[Member],
    messages: list[Message],
    settings: AnswerSettings,
    cancel: threading.Event | None = None,
) -> Iterator[SegmentChosen | Notice | AnswerDone]:
    """Fuse `members` into one answer to `messages`, yielding events as it goes."""
    started = time.perf_counter()
    stats = GenerationStats(mode=settings.mode)
    run = _FusionRun(members, settings, stats)
    stats.lead = run.lead.name
    stop_strings = list(settings.stop)
    for member in members:
        stop_strings += [s for s in member.chat.stop_strings() if s not in stop_strings]
    shown = ShownText(stop_strings)  # answer text already emitted to the consumer

    lead_decodes_before = run.lead.model.decode_calls  # set again once the prompt is read

    def done(reason: str, error: str | None = None, failed_model: str | None = None) -> AnswerDone:
        stats.seconds = time.perf_counter() - started
        stats.lead_decodes = run.lead.model.decode_calls - lead_decodes_before
        stats.answer_tokens = len(run.lead.model.answer_tokens)
        stats.tokens_per_model = {m.name: len(m.model.answer_tokens) for m in members}
        stats.sampling = settings.sampling.as_dict()
        return AnswerDone(shown.text, reason, stats, error, failed_model)

    try:
        prompts, dropped = fit_prompts(members, messages, ANSWER_RESERVE)
    except ContextFull as error:
        yield done("context_full", str(error))
        return
    except CoolfusionError as error:  # e.g. a chat template that refuses the conversation
        yield done("error", str(error))
        return
    stats.prompt_tokens = len(prompts[run.lead.name])
    if dropped:
        yield Notice(f"the conversation is longer than a model's context: the {dropped} oldest messages were left out")
    try:
        for member in members:
            member.model.start_answer(prompts[member.name])
        stats.prompt_seconds = time.perf_counter() - started
        lead_decodes_before = run.lead.model.decode_calls
        while True:
            if cancel is not None and cancel.is_set():
                yield done("stopped")
                return
            room = min(m.model.room() for m in members) - 2
            if room <= 1:
                yield Notice("a model's context is full: the answer was cut short")
                yield done("context_full")
                return
            round_started = time.perf_counter()
            current = run.play_round(room)
            if settings.loop_guard:
                current = run.avoid_loop(current, room)
                if current is None:
                    yield Notice("the answer began to repeat itself verbatim (every candidate would loop): "
                                 "it was ended there")
                    yield done("loop")
                    return
            cut = run.cut_at_limit(current, settings.max_tokens)
            if cut is None:
                run.commit(current)
            else:
                run.commit_cut(current, cut)
            ends = current.winner_key[1] and cut is None
            winners = current.by_key[current.winner_key]
            at_limit = cut is not None or len(run.lead.model.answer_tokens) >= settings.max_tokens

            final = ends or at_limit or min(m.model.room() for m in members) - 2 <= 1
            segment_text, stopped = shown.advance(bytes(run.answer), final)
            stats.segments += 1
            winner_name = winners[0].member.name
            stats.wins[winner_name] = stats.wins.get(winner_name, 0) + 1
            stats.decisions[current.decision] = stats.decisions.get(current.decision, 0) + 1
            if any(p.forced for p in winners):
                stats.decisions["forced"] = stats.decisions.get("forced", 0) + 1
            yield SegmentChosen(
                index=stats.segments - 1,
                text=segment_text,
                winner=winner_name,
                proposers=tuple(p.member.name for p in winners),
                candidates={
                    p.member.name: Candidate(
                        p.member.name, p.text.decode("utf-8", errors="replace"), p.ends, len(p.tokens)
                    )
                    for p in current.proposals
                },
                scores=current.scores,
                decision=current.decision,
                ends_answer=ends or stopped,
                seconds=time.perf_counter() - round_started,
                forced=any(p.forced for p in winners),
                lead_margins={current.by_key[key][0].member.name: round(parting.margin, 4)
                              for key, parting in current.partings.items()},
            )
            if stopped:
                yield done("stop_string")
                return
            if ends:
                yield done("eos")
                return
            if at_limit:
                yield done("max_tokens")
                return
    except ContextFull as error:
        yield Notice(str(error))
        yield done("context_full")
    except CoolfusionError as error:
        yield done("error", str(error), error.model)
    finally:
        run.close()
