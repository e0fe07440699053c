"""Connecting a remote member: find the served model, check the tokenizer, find what the server can do.

Everything a fused answer relies on is tried once here, so a server that
cannot take part fails at load in one line instead of in the middle of an
answer:

1. `/v1/models` lists the served model (an OpenAI-compatible server at all?);
2. the local tokenizer splits a probe text as the server's own tokenize
   endpoint does (vLLM `/tokenize`, llama-cpp-python `/extras/tokenize`);
3. the richer prompt forms are tried: token ids, and a list of prompts in one
   request (vLLM takes both; llama-cpp-python's server takes one text);
4. the server scores: an echo request returns log-probabilities for the
   prompt tokens (llama.cpp's llama-server does not, issue #27174), and they
   agree with the ones it gives while generating the same tokens (which
   catches prompt log-probabilities shifted by one token).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ...engine.source_model import SourceModel
from ..gguf_info import GgufError, read_gguf_info
from .client import CompletionsClient, HttpStatusError, RemoteError, ServerUnreachable
from .member import RemoteModel
from .protocol import choices, completion_body

PROBE_TEXT = "Fusion probe: 12 apples cost $3.45, naïve café, 漢字 🙂\n  indented"  # for the tokenizers
SCORING_PROBE = b"The capital of France is"  # short: llama-cpp-python spends ~0.5 s per echoed token
# Prompt log-probabilities computed in one batch differ from those computed
# token by token in the last digits only; a shifted echo misses by whole nats.
ALIGNMENT_TOLERANCE = 0.05


def load_remote(spec, tokenizer_path: Path, progress: Callable[[float], None] | None = None) -> tuple[RemoteModel, list[str]]:
    """Connect `spec` (a models.toml entry with `url`); returns the member and notices for the user."""
    client = CompletionsClient(spec.name, spec.url, timeout_s=spec.timeout_s, api_key_env=spec.api_key_env)
    tokenizer = None
    try:
        served, max_len = _served_model(client, spec.served_model)
        if progress:
            progress(0.3)
        tokenizer = SourceModel(spec.name, tokenizer_path, vocab_only=True)
        notices = _check_tokenizer(client, tokenizer, served)
        if progress:
            progress(0.6)
        token_prompts, prompt_lists = _prompt_forms(client, tokenizer, served)
        n_ctx = min(spec.n_ctx, max_len) if max_len else spec.n_ctx
        model = RemoteModel(spec.name, client, tokenizer, served, n_ctx=n_ctx,
                            token_prompts=token_prompts, prompt_lists=prompt_lists)
        model.n_params = _parameter_count(tokenizer_path)
        notices += _check_scoring(model)
        if progress:
            progress(1.0)
    except BaseException:
        client.close()
        if tokenizer is not None:
            tokenizer.close()
        raise
    return model, notices


def server_state(spec, timeout_s: float = 3.0) -> str:
    """A served model's state in a word or two, for `coolfusion models list`: one quick request."""
    try:
        client = CompletionsClient(spec.name, spec.url, timeout_s=min(spec.timeout_s, timeout_s),
                                   api_key_env=spec.api_key_env)
    except RemoteError:
        return "no key"  # api_key_env names an unset variable
    try:
        _served_model(client, spec.served_model)
    except HttpStatusError as error:
        return "key refused" if error.status in (401, 403) else f"HTTP {error.status}"
    except RemoteError as error:
        return "down" if isinstance(error, ServerUnreachable) else "not served"
    finally:
        client.close()
    return "up"


def served_model_id(client: CompletionsClient, wanted: str | None) -> str:
    """The id of the model `client`'s server serves (`wanted`, checked); a RemoteError in one line otherwise."""
    return _served_model(client, wanted)[0]


def _served_model(client: CompletionsClient, wanted: str | None) -> tuple[str, int | None]:
    """The served model's id (checked against /v1/models) and its context length when the server says."""
    where = f"model {client.name!r} ({client.url})"
    try:
        listing = client.get(client.api_path("/models"), what="listing the served models")
    except HttpStatusError as error:
        if error.status in (401, 403):
            raise
        raise RemoteError(f"{where}: no model list at {client.api_path('/models')} (HTTP {error.status}); "
                          "is the url an OpenAI-compatible API (ending in /v1)?") from None
    data = listing.get("data")
    if not isinstance(data, list) or not all(isinstance(m, dict) and isinstance(m.get("id"), str) for m in data):
        raise RemoteError(f"{where}: /models did not list models the OpenAI way; "
                          "is the url an OpenAI-compatible API (ending in /v1)?")
    ids = [m["id"] for m in data]
    if wanted is None:
        if len(ids) != 1:
            raise RemoteError(f"{where}: the server serves {len(ids)} models; name one with model = \"...\" "
                              f"({', '.join(ids) or 'none listed'})")
        wanted = ids[0]
    elif wanted not in ids:
        raise RemoteError(f"{where}: the server does not serve {wanted!r}; it serves: {', '.join(ids) or 'nothing'}")
    entry = data[ids.index(wanted)]
    max_len = entry.get("max_model_len")
    return wanted, max_len if isinstance(max_len, int) and max_len > 0 else None


def _check_tokenizer(client: CompletionsClient, tokenizer: SourceModel, served: str) -> list[str]:
    """Refuse a local tokenizer that splits the probe text otherwise than the server."""
    where = f"model {client.name!r} ({client.url})"
    ours = tokenizer.tokenize(PROBE_TEXT.encode("utf-8"), special=True)
    attempts = [
        (client.root_path("/extras/tokenize"), {"model": served, "input": PROBE_TEXT}),  # llama-cpp-python
        (client.root_path("/tokenize"), {"model": served, "prompt": PROBE_TEXT, "add_special_tokens": False}),  # vLLM
    ]
    for path, body in attempts:
        try:
            answer = client.post(path, body, what="tokenizing the probe text")
        except HttpStatusError as error:
            if error.status in (404, 405, 422):
                continue
            raise
        theirs = answer.get("tokens")
        if not isinstance(theirs, list) or not all(isinstance(t, int) for t in theirs):
            continue
        if theirs[:1] == [tokenizer.bos_token] and ours[:1] != [tokenizer.bos_token]:
            theirs = theirs[1:]
        if theirs != ours:
            raise RemoteError(f"{where}: the local tokenizer ({tokenizer.path.name}) splits a probe text into "
                              f"{len(ours)} tokens, the server into {len(theirs)}; give the served model's own "
                              "tokenizer")
        return []
    return [f"the server has no tokenize endpoint: the tokenizer {tokenizer.path.name} could not be checked "
            "against it"]


def _prompt_forms(client: CompletionsClient, tokenizer: SourceModel, served: str) -> tuple[bool, bool]:
    """(takes token ids as the prompt, takes a list of prompts): tried with one-token answers."""
    where = f"model {client.name!r} ({client.url})"
    ids = tokenizer.tokenize(b"Hello")
    path = client.api_path("/completions")
    try:
        answer = client.post(path, completion_body(served, ids, max_tokens=1, token_ids=True), what="probing")
        choices(answer, where, 1)
    except HttpStatusError as error:
        if error.status in (401, 403):
            raise
        return False, False
    try:
        answer = client.post(path, completion_body(served, [ids, ids], max_tokens=1, token_ids=True), what="probing")
        choices(answer, where, 2)
    except RemoteError as error:
        if isinstance(error, HttpStatusError) and error.status in (401, 403):
            raise
        return True, False
    return True, True


def _check_scoring(model: RemoteModel) -> list[str]:
    """The server returns prompt log-probabilities, and they are the generated tokens' own.

    llama-cpp-python's server echoes them shifted by one token for a model
    that adds no BOS token (Qwen), unless the prompt starts with BOS: then
    every scoring prompt gets one (`RemoteModel._prompt`).
    """
    disagreement = _scoring_disagreement(model)
    if disagreement and not model.token_prompts and model.bos_token >= 0 and not model.add_bos:
        model.bos_prefix = model.bos_prefix_proposals = True
        fixed = _scoring_disagreement(model) is None
        model.bos_prefix_proposals = False
        if fixed:
            return [f"the server's echoed log-probabilities are shifted without a BOS token, so scoring "
                    f"prompts start with {model.token_text(model.bos_token)}"]
        model.bos_prefix = False
    if disagreement:
        raise RemoteError(f"{model.where}: {disagreement}")
    return []


def _scoring_disagreement(model: RemoteModel) -> str | None:
    """Why the server's scores cannot be used, or None."""
    probe = model.tokenize(SCORING_PROBE)
    model.start_answer(probe)
    try:
        first, second = model.step(), model.step()
        if first.ends or second.ends:  # nothing to compare; still ask for prompt log-probabilities
            model._prompt_logprobs([probe], [2])
            return None
        (values,) = model._prompt_logprobs([probe + [first.token, second.token]], [2])
    finally:
        model.forget()
    for generated, echoed in zip((first.nll, second.nll), values):
        if abs(generated + echoed) > ALIGNMENT_TOLERANCE + 0.05 * abs(generated):
            return (f"the server's prompt log-probabilities ({-values[0]:.3f}, {-values[1]:.3f}) disagree with "
                    f"its generated ones ({first.nll:.3f}, {second.nll:.3f}) for the same tokens; it cannot score")
    return None


def _parameter_count(path: Path) -> int | None:
    """The served model's size, where its tokenizer file is the whole GGUF (a vocab-only one has none)."""
    try:
        count = read_gguf_info(path).parameter_count
    except GgufError:
        return None
    return count or None
