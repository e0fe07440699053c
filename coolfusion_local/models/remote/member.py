"""A source model served over HTTP, driven through the same interface as a local one.

`RemoteModel` answers the fusion loop's questions (`step`, `score`,
`commit`, ...) with /v1/completions requests, and keeps the shared text as
token ids on our side, exactly as `SourceModel` keeps its KV cache:

* Sequence state: the prompt + the answer agreed so far ("committed"),
  then this model's own greedy look-ahead ("pending"), as in `SourceModel`.
* Proposals: one request writes several greedy tokens (`LOOKAHEAD_TOKENS`);
  those not used yet wait in `_ahead`, so most rounds where this model's
  proposal wins cost no request at all. An end of turn the server reported
  waits there too.
* Scoring: one echo request per candidate (or one request for all of them
  where the server takes a list of prompts, as vLLM does). The server's
  prefix cache makes the shared part cheap: vLLM's automatic prefix caching,
  llama-cpp-python's reuse of its last prompt.
* Tokens travel as ids where the server takes them (vLLM), else as text that
  the server tokenises back (llama-cpp-python's server); either way the
  answer is checked against our tokens before a number is used.

The tokenizer is local (a GGUF loaded vocab-only, `tokenizer.py`): the
boundary detector tokenises the same windows many times per round, which
must not cost a round trip each.

What a remote member cannot give, and what it gives instead:

* `next_token_nll` (the lead's shortcut to veto a round without scoring)
  needs the whole next-token distribution; a remote member returns a lower
  bound, -log(1 - p) of its own greedy token, which is all the veto needs
  (it only vetoes when the bound already settles it).
* `end_nll`: the probability of the turn's end token the chat template uses,
  where a local model sums every end-of-generation token (the others carry
  next to nothing after an answer).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from ...engine.sampling import Sampling
from ...engine.members import ContextFull, Scored, Step
from ...engine.shared_text import SharedText
from ...engine.source_model import SourceModel
from ...engine.token_sampler import TokenSampler
from .client import CompletionsClient, RemoteError
from .protocol import Choice, choices, completion_body, token_id
from .text_tokens import SplitCharacter, TextTokens

LOOKAHEAD_TOKENS = 4  # greedy tokens asked for per proposal request: about a word


def _naming_member(method):
    """Errors out of `method` carry the member's name, so the answer that ends can say whose server failed."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except RemoteError as error:
            error.model = error.model or self.name
            raise

    return wrapper


@dataclass(frozen=True)
class ServerSampler:
    """A served member's sampler: the answer's settings, sent with each proposal request
    (the logits stay on the server, so llama.cpp's sampler chain runs there)."""

    sampling: Sampling

    def close(self) -> None:
        pass


class RemoteModel(SharedText):
    """A model behind an OpenAI-compatible /v1/completions endpoint, with a local tokenizer
    (an engine/members.py `MemberModel`)."""

    is_local = False
    can_draft = False  # its server decodes: nothing to gain from checking drafts in batches here
    decode_calls = 0  # the server's decodes are not ours to count

    def __init__(
        self,
        name: str,
        client: CompletionsClient,
        tokenizer: SourceModel,
        served_model: str,
        *,
        n_ctx: int,
        token_prompts: bool,
        prompt_lists: bool,
    ):
        SharedText.__init__(self, tokenizer._vocab)
        self.name = name
        self.client = client
        self.url = client.url
        self.served_model = served_model
        self._tokenizer = tokenizer  # owns the llama.cpp vocabulary this object reads
        self.n_ctx = n_ctx
        self.n_params: int | None = None  # load.py reads it from the GGUF header, when the file has weights
        self.n_layers = 0
        self.n_gpu_layers = 0
        self.load_seconds = 0.0
        self.token_prompts = token_prompts  # the server takes token ids as the prompt (vLLM)
        self.prompt_lists = prompt_lists  # and several prompts per request
        # Scoring prompts sent as text start with the BOS token's text even where
        # the model adds none: llama-cpp-python's server shifts echoed
        # log-probabilities by one token unless the prompt starts with BOS
        # (load.py finds out). Proposals go without it, so the greedy answer is
        # the model's own; only scores see the extra token.
        self.bos_prefix = False
        self.bos_prefix_proposals = False  # load.py's check compares both in the same context
        self.end_token = self._turn_end_token()
        self.decoded_tokens = 0  # tokens the server wrote or scored for us
        self._clear_shared_text()
        self._ahead: list[Step] = []  # the server's greedy continuation past the pending tokens
        self._end_nlls: dict[int, float] = {}  # end-of-turn NLL after the first n tokens of _cache
        self._text_tokens = TextTokens(self)

    def _turn_end_token(self) -> int:
        """The end-of-generation token the chat template ends a turn with, else EOS."""
        template = self._tokenizer.chat_template() or ""
        for token in self._eog.tolist():
            text = self.token_text(int(token))
            if text and text in template:
                return int(token)
        return self.eos_token

    @property
    def where(self) -> str:
        return f"model {self.name!r} ({self.url})"

    # ------------------------------------------------------------------ lifecycle and metadata

    def close(self) -> None:
        self.client.close()
        self._tokenizer.close()

    def chat_template(self) -> str | None:
        return self._tokenizer.chat_template()

    # ------------------------------------------------------------------ requests

    def _text(self, tokens: list[int], prefix: bool) -> str:
        """The prompt as text the server tokenises back into `tokens`: special tokens written out,
        message text that spells one broken up (text_tokens.py)."""
        if tokens[:1] == [self.bos_token]:
            tokens = tokens[1:]  # the server adds its own BOS to a text prompt, or `prefix` does
        if prefix:
            tokens = [self.bos_token, *tokens]
        try:
            return self._text_tokens.prompt_text(tokens)
        except SplitCharacter:
            raise RemoteError(f"{self.where}: the text ends inside a character and cannot be sent "
                              "as a text prompt") from None

    def _prompt(self, tokens: list[int], echo: bool):
        if self.token_prompts:
            return list(tokens)
        return self._text(tokens, self.bos_prefix and (echo or self.bos_prefix_proposals))

    def _complete(
        self,
        prompts: list[list[int]],
        *,
        max_tokens: int,
        echo: bool,
        what: str,
        sampling: "Sampling | None" = None,
        seed: int | None = None,
    ) -> list[Choice]:
        batches = [prompts] if self.prompt_lists else [[p] for p in prompts]
        found: list[Choice] = []
        for batch in batches:
            prompt = [self._prompt(p, echo) for p in batch] if len(batch) > 1 else self._prompt(batch[0], echo)
            body = completion_body(self.served_model, prompt, max_tokens=max_tokens, echo=echo,
                                   token_ids=self.token_prompts, sampling=sampling, seed=seed)
            answer = self.client.post(self.client.api_path("/completions"), body, what=what)
            found += choices(answer, self.where, len(batch))
        return found

    def _prompt_logprobs(self, prompts: list[list[int]], tails: list[int]) -> list[list[float]]:
        """Log-probabilities of the last `tails[i]` tokens of each prompt, from echo requests."""
        for prompt in prompts:
            if len(prompt) + 1 > self.n_ctx:
                raise ContextFull(f"model {self.name!r}: its context of {self.n_ctx} tokens is full")
        answers = self._complete(prompts, max_tokens=1, echo=True, what="scoring")
        results = []
        for prompt, tail, choice in zip(prompts, tails, answers):
            results.append(self._tail_logprobs(prompt, tail, choice))
            self.decoded_tokens += tail
        return results

    def _tail_logprobs(self, prompt: list[int], tail: int, choice: Choice) -> list[float]:
        """The echoed log-probabilities of the prompt's last `tail` tokens.

        The echo lists the prompt's tokens, then the one generated; a server
        taking text leaves out a leading BOS (llama-cpp-python). Token-id
        prompts come back token for token. A text prompt is tokenised again by
        the server, which may split the end of the text otherwise than our
        token list (greedy tokens need not be the canonical split): then the
        server's own tokens that spell the candidate's text are used.
        """
        if tail == 0:
            return []
        dropped = 1 if not self.token_prompts and (self.bos_prefix or prompt[:1] == [self.bos_token]) else 0
        end = len(prompt) - dropped
        if not self.token_prompts and choice.prompt_tokens is not None:
            end = choice.prompt_tokens - dropped
        if len(choice.tokens) < end or end - tail < 1:
            raise RemoteError(f"{self.where}: the server returns no log-probabilities for the prompt (echo) and "
                              "cannot score candidates; llama.cpp's llama-server cannot yet, vLLM and "
                              "llama-cpp-python's server can (docs/remote.md)")
        ours = prompt[len(prompt) - tail :]
        first = end - tail
        if not all(self._same_token(text, token) for text, token in zip(choice.tokens[first:end], ours)):
            first = self._first_entry_spelling(choice.tokens, end, ours)
        values = choice.logprobs[first:end]
        if any(value is None for value in values):
            raise RemoteError(f"{self.where}: the server returned no log-probability for a prompt token")
        return [float(value) for value in values]

    def _first_entry_spelling(self, served: list[str], end: int, ours: list[int]) -> int:
        """Where the server's tokens before `end` start to spell the text of `ours`."""
        wanted = "".join(self._piece(t).decode("utf-8", errors="ignore") for t in ours)
        spelled, first = "", end
        while first > 1 and (len(spelled) < len(wanted) or (not wanted and first == end)):
            first -= 1
            spelled = served[first] + spelled
        if spelled != wanted:
            raise RemoteError(f"{self.where}: the server's tokens {served[first:end]!r} do not spell the text "
                              f"sent ({wanted!r}); is the tokenizer the served model's?")
        return first

    def _same_token(self, served: str, token: int) -> bool:
        """Whether the server's token text (or "token_id:N") is `token`."""
        as_id = token_id(served)
        if as_id is not None:
            return as_id == token
        if served == self.token_text(token):
            return True
        # llama-cpp-python writes special tokens as "" and drops the bytes of a
        # character split across tokens (it decodes each with errors="ignore").
        return served == self._piece(token, special=False).decode("utf-8", errors="ignore")

    # ------------------------------------------------------------------ the shared state

    def start_answer(self, prompt_tokens: list[int]) -> int:
        """Make the shared text exactly `prompt_tokens` (the server's prefix cache holds what it can)."""
        if len(prompt_tokens) >= self.n_ctx:
            raise ContextFull(
                f"model {self.name!r}: the prompt takes {len(prompt_tokens)} tokens, its context holds {self.n_ctx}"
            )
        self._clear_shared_text(prompt_tokens)
        self._ahead, self._end_nlls = [], {}
        return len(prompt_tokens)

    def forget(self) -> None:
        self._clear_shared_text()
        self._ahead, self._end_nlls = [], {}

    def sampler(self, sampling: Sampling) -> ServerSampler:
        return ServerSampler(sampling)

    @_naming_member
    def step(self, sampler: ServerSampler | None = None) -> Step:
        """The next token past the pending ones (an end of turn is not added).

        Greedy without a sampler; with one, the server samples with the same
        settings (temperature, top-k/p, min-p, repeat penalty): the logits stay
        on the server, so llama.cpp's sampler chain runs there, not here.
        """
        if not self._ahead:
            self._fetch_ahead(None if sampler is None else sampler.sampling)
        step = self._ahead[0]
        if step.ends:
            return step
        self._ahead.pop(0)
        self._cache.append(step.token)
        self._pending_nll.append(step.nll)
        return step

    def _fetch_ahead(self, sampling: "Sampling | None" = None) -> None:
        """Ask the server for the next tokens after the shared text and pending tokens."""
        room = self.n_ctx - len(self._cache) - 1
        if room < 1:
            raise ContextFull(f"model {self.name!r}: its context of {self.n_ctx} tokens is full")
        # A seeded answer stays reproducible: each request's seed follows from
        # the answer's seed and where in the text the request starts.
        seed = None if sampling is None or sampling.seed is None else (sampling.seed + len(self._cache)) % 2**31
        (choice,) = self._complete([self._cache], max_tokens=min(LOOKAHEAD_TOKENS, room), echo=False,
                                   what="a proposal", sampling=sampling, seed=seed)
        steps = self._steps_from(choice)
        self.decoded_tokens += len(steps)
        if choice.finish_reason == "stop":  # we send no stop strings: the model ended its turn
            steps.append(Step(self.end_token, math.nan, True))
        elif not steps:
            raise RemoteError(f"{self.where}: a proposal came back with no tokens "
                              f"(finish_reason {choice.finish_reason!r})")
        self._ahead = steps

    def _steps_from(self, choice: Choice) -> list[Step]:
        """Our token ids for the server's greedy tokens, each with its NLL."""
        texts = choice.tokens
        if texts and choice.finish_reason == "stop" and len(texts) > 0 and self._names_end(texts[-1]):
            texts = texts[:-1]  # vLLM lists the end token it stopped at; llama-cpp-python does not
        values = choice.logprobs[: len(texts)]
        ids = [token_id(text) for text in texts]
        if all(i is not None for i in ids):
            tokens = [int(i) for i in ids]  # type: ignore[arg-type]
        else:
            tokens = self._ids_for_texts(texts, choice.text)
        steps = []
        for token, value in zip(tokens, values):
            if value is None:
                raise RemoteError(f"{self.where}: the server returned no log-probability for a generated token")
            steps.append(Step(token, -float(value), False))
        return steps

    def _names_end(self, text: str) -> bool:
        as_id = token_id(text)
        if as_id is not None:
            return self.is_end(as_id)
        return any(text == self.token_text(int(t)) for t in self._eog.tolist())

    def _ids_for_texts(self, texts: list[str], whole: str | None = None) -> list[int]:
        """Token ids for generated tokens the server gave as text only (llama-cpp-python).

        Each token's text is looked up alone first (greedy tokens need not be
        the canonical split of their joined text); what is left is tokenised
        together and must split into the same pieces. Byte tokens of a
        character split over several tokens come back as "": those are read
        along the completion's whole text (`whole`) instead. Generation that
        stopped inside a character keeps the tokens before it: the rest is
        asked for again with the next proposal.
        """
        tokens: list[int] = []
        for text in texts:
            alone = self.tokenize_exactly(text.encode("utf-8")) if text else None
            if not alone or len(alone) != 1:
                break
            tokens.append(alone[0])
        rest = texts[len(tokens):]
        if rest:
            joined = self.tokenize_exactly("".join(rest).encode("utf-8")) or []
            same = 0
            while same < min(len(joined), len(rest)) and self._same_token(rest[same], joined[same]):
                same += 1
            tokens += joined[:same]
        if len(tokens) < len(texts) and whole is not None:
            along = self._text_tokens.ids_for_texts(texts, whole)
            if len(along) > len(tokens):
                tokens = along
        if not tokens and texts:
            raise RemoteError(f"{self.where}: the server's tokens {texts[:4]!r} do not read back as our "
                              "tokenizer's; is the tokenizer the served model's?")
        return tokens

    def next_token_nll(self, token: int) -> float:
        """A lower bound of -log P(token | the shared text): exact for the greedy token,
        -log(1 - p(greedy)) for any other."""
        first = self.pending[:1] or [s for s in self._ahead[:1] if not s.ends]
        if first:
            greedy, nll = first[0].token, first[0].nll
        elif self._ahead and self._ahead[0].ends and self._committed in self._end_nlls:
            greedy, nll = self._ahead[0].token, self._end_nlls[self._committed]
        else:
            return 0.0
        if token == greedy:
            return nll
        rest = -math.expm1(-nll)  # 1 - p(greedy)
        return -math.log(rest) if rest > 0 else math.inf

    def top_margin(self, index: int, sampler: TokenSampler | None = None) -> float:
        """0: the server gives no whole rows, so the lead-sure guard counts this model unsure everywhere
        (its partners are heard as they were before the guard)."""
        return 0.0

    def drop_hidden(self) -> None:
        """Nothing to drop: a served model keeps no look-ahead past what proposals have seen."""

    @_naming_member
    def end_nll(self) -> float:
        """-log P(the turn ends here | the pending look-ahead), one scoring request, remembered."""
        at = len(self._cache)
        found = self._end_nlls.get(at)
        if found is None:
            (values,) = self._prompt_logprobs([self._cache + [self.end_token]], [1])
            found = self._end_nlls[at] = -values[0]
        return found

    @_naming_member
    def score(self, requests: list[tuple[int, list[int], bool]]) -> list[Scored]:
        """Score candidates (start, tokens, ends_answer) with echo requests."""
        prompts, tails = [], []
        for start, tokens, ends in requests:
            if not 0 < start <= self._committed:
                raise ValueError("a candidate must start inside the shared text")
            tail = tokens + ([self.end_token] if ends else [])
            prompts.append(self._cache[:start] + tail)
            tails.append(len(tail))
        results = []
        for (start, tokens, ends), values in zip(requests, self._prompt_logprobs(prompts, tails)):
            results.append(Scored(-sum(values), len(values), 0, start, 0, None))
        return results

    def commit(self, start: int, tokens: list[int], scored: Scored | None = None) -> None:
        """Make the shared text end with `tokens` placed at `start`; look-ahead that still follows is kept."""
        target = self._cache[:start] + tokens
        end = len(target)
        if end >= self._committed and self._cache[:end] == target:
            self._pending_nll = self._pending_nll[end - self._committed :]
        else:
            self._cache = target
            self._pending_nll, self._ahead = [], []
            self._end_nlls = {at: nll for at, nll in self._end_nlls.items() if at <= start}
        self._committed = end

    # ------------------------------------------------------------------ checks

    def smoke_test(self) -> str:
        """One greedy token after a short prompt (for `models check`)."""
        self.start_answer(self.tokenize(b"The capital of France is", add_bos=self.add_bos))
        step = self.step()
        return "" if step.ends else self.piece(step.token).decode("utf-8", errors="replace")
