"""The /v1/completions requests a remote member makes, and reading their answers.

Two kinds of request, both greedy (temperature 0, no penalties):

* a *proposal*: the shared text as the prompt, `max_tokens` new tokens with
  their log-probabilities (`logprobs`);
* a *score*: `echo: true` with `logprobs` and `max_tokens: 1`, which returns
  the log-probability of every prompt token (the way lm-evaluation-harness
  scores text against vLLM). `max_tokens: 0` would be cheaper, but
  llama-cpp-python reads 0 as "until the context is full".

Answers are checked field by field: a server that leaves something out gets
one line saying what, never a KeyError.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ...engine.sampling import Sampling

from .client import RemoteError

# Greedy means greedy on every server: llama-cpp-python's server applies a
# repeat penalty of 1.1 unless told otherwise, vLLM names it repetition_penalty.
GREEDY_FIELDS = {
    "temperature": 0.0,
    "top_p": 1.0,
    "repeat_penalty": 1.0,
    "repetition_penalty": 1.0,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
}


def sampling_fields(sampling: "Sampling | None", seed: int | None) -> dict:
    """The request's sampling fields: greedy, or the answer's settings under both engines' names.

    The repeat penalty goes wherever a local member applies one: in a sampled
    answer, also to a model whose own temperature is 0 (greedy with the
    penalty, as llama.cpp's sampler chain does locally); never with
    `repeat_last_n = 0`, which switches it off locally. What each server
    penalises differs from a local member (docs/remote.md).
    """
    if sampling is None:
        return dict(GREEDY_FIELDS)
    penalty = sampling.repeat_penalty if sampling.repeat_last_n != 0 else 1.0
    if sampling.greedy:
        return {**GREEDY_FIELDS, "repeat_penalty": penalty, "repetition_penalty": penalty}
    fields = {
        "temperature": sampling.temperature,
        "top_k": sampling.top_k,
        "top_p": sampling.top_p,
        "min_p": sampling.min_p,
        "repeat_penalty": penalty,  # llama-cpp-python's name
        "repetition_penalty": penalty,  # vLLM's
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
    }
    if seed is not None:
        fields["seed"] = seed
    return fields


def completion_body(
    model: str,
    prompt,
    *,
    max_tokens: int,
    echo: bool = False,
    token_ids: bool = False,
    sampling: "Sampling | None" = None,
    seed: int | None = None,
) -> dict:
    body = {
        "model": model,
        "prompt": prompt,
        "max_tokens": max_tokens,
        "logprobs": 1,
        "echo": echo,
        "stream": False,
        **sampling_fields(sampling, seed),
    }
    if token_ids:
        # vLLM: tokens come back as "token_id:123", no guessing ids from their text.
        body["return_tokens_as_token_ids"] = True
    return body


@dataclass
class Choice:
    """One choice of a completion answer, as far as we use it."""

    tokens: list[str]
    logprobs: list[float | None]
    finish_reason: str | None
    prompt_tokens: int | None  # the prompt's length in the server's tokens, when it says (usage)
    text: str | None = None  # the generated text as one string (holds characters split over tokens)


def choices(answer: dict, where: str, expected: int) -> list[Choice]:
    """The answer's choices in prompt order, each with its per-token log-probabilities."""
    raw = answer.get("choices")
    if not isinstance(raw, list) or len(raw) != expected:
        got = f"{len(raw)} choices" if isinstance(raw, list) else "no 'choices' list"
        raise RemoteError(f"{where}: malformed completion answer ({got}, expected {expected}); "
                          "is this an OpenAI-compatible /v1/completions endpoint?")
    usage = answer.get("usage")
    # One usage block covers all choices: only a single prompt's length can be read from it.
    prompt_tokens = usage.get("prompt_tokens") if isinstance(usage, dict) and expected == 1 else None
    ordered: list[Choice | None] = [None] * expected
    for position, choice in enumerate(raw):
        if not isinstance(choice, dict):
            raise RemoteError(f"{where}: malformed completion answer (a choice is not an object)")
        index = choice.get("index", position)
        if not isinstance(index, int) or not 0 <= index < expected or ordered[index] is not None:
            raise RemoteError(f"{where}: malformed completion answer (choice index {index!r})")
        logprobs = choice.get("logprobs")
        if not isinstance(logprobs, dict):
            raise RemoteError(f"{where}: the server returned no logprobs; it cannot take part in fusion")
        tokens, values = logprobs.get("tokens"), logprobs.get("token_logprobs")
        if not isinstance(tokens, list) or not isinstance(values, list) or len(tokens) != len(values):
            raise RemoteError(f"{where}: malformed logprobs (tokens and token_logprobs missing or of unequal length)")
        for value in values:
            if value is not None and (not isinstance(value, (int, float)) or math.isnan(value)):
                raise RemoteError(f"{where}: malformed logprobs (a token log-probability is {value!r})")
        if not all(isinstance(t, str) for t in tokens):
            raise RemoteError(f"{where}: malformed logprobs (a token is not a string)")
        reason, text = choice.get("finish_reason"), choice.get("text")
        ordered[index] = Choice(tokens, values, reason if isinstance(reason, str) else None,
                                prompt_tokens if isinstance(prompt_tokens, int) else None,
                                text if isinstance(text, str) else None)
    return ordered  # type: ignore[return-value]


def token_id(text: str) -> int | None:
    """The id in vLLM's "token_id:123" form, else None."""
    if text.startswith("token_id:"):
        try:
            return int(text[len("token_id:"):])
        except ValueError:
            return None
    return None
