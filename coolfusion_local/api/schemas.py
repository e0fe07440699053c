"""The request bodies the API accepts, validated, and what the engine gets from them.

Fields OpenAI clients send routinely and the engine has no use for (`user`,
`presence_penalty`, `logit_bias`, ...) are accepted and ignored, as llama.cpp's
and Ollama's servers do; fields that would change the answer or its shape in a
way the engine cannot honour (`n` > 1, tools and functions, `logprobs`, a JSON
`response_format`, images, `echo`) are refused with a 400 that names them,
unless set to their neutral value (`"logprobs": false`, `"n": 1`,
`"tool_choice": "none"`, `{"type": "text"}`). Sampling values are checked by
`Sampling.invalid_setting`, the one check the flags and models.toml use too.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..engine import Message
from ..engine.sampling import Sampling
from .errors import ApiError

MAX_STOP_STRINGS = 16


class _Body(BaseModel):
    # strict: "max_tokens": "12" or "stream": "yes" is a client bug worth a 400, not a guess.
    model_config = ConfigDict(extra="ignore", strict=True)


class ContentPart(_Body):
    type: str
    text: str | None = None


class ChatMessage(_Body):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None

    def text(self, index: int) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        texts = []
        for part in self.content:
            if part.type != "text" or part.text is None:
                raise ApiError(400, f"messages[{index}]: content parts of type {part.type!r} are not supported; "
                               "send text", code="unsupported_content", param=f"messages[{index}].content")
            texts.append(part.text)
        return "".join(texts)


class StreamOptions(_Body):
    include_usage: bool = False


class ResponseFormat(_Body):
    type: str


def _unsupported(name: str, why: str) -> ApiError:
    return ApiError(400, f"{name} is not supported by the fused model: {why}", code="unsupported_parameter",
                    param=name)


def _refuse_first(asked: dict[str, tuple[bool, str]]) -> None:
    """`asked`: field -> (set to something other than its neutral value, why it cannot be honoured)."""
    for name, (given, why) in asked.items():
        if given:
            raise _unsupported(name, why)


class _Generation(_Body):
    """What chat and plain completions share: the model, limits, stops, sampling."""

    model: str = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    n: int = Field(default=1, ge=1)
    # Sampling: OpenAI's fields, then llama.cpp's extensions its server accepts too. Their
    # ranges are Sampling.invalid_setting's (see sampling()); 2 is OpenAI's own top temperature.
    temperature: float | None = Field(default=None, le=2.0)
    top_p: float | None = None
    seed: int | None = None
    top_k: int | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    repeat_last_n: int | None = None
    # llama.cpp's server field: false evaluates the prompt afresh instead of reusing the
    # cached prefix of earlier requests (slower, but the answer then does not depend on them).
    cache_prompt: bool = True

    @field_validator("stop")
    @classmethod
    def _stops(cls, value):
        stops = [value] if isinstance(value, str) else value
        if stops is not None and (len(stops) > MAX_STOP_STRINGS or any(not s for s in stops)):
            raise ValueError(f"at most {MAX_STOP_STRINGS} stop strings, none empty")
        return value

    def refuse_unsupported(self) -> None:
        if self.n != 1:
            raise _unsupported("n", "the engine writes one answer per request (n > 1)")

    def stops(self) -> list[str] | None:
        return [self.stop] if isinstance(self.stop, str) else self.stop

    def answer_limit(self) -> int | None:
        return self.max_tokens

    def sampling(self, default: Sampling | None) -> Sampling | None:
        """The server's default sampling with the request's fields over it, one by one.

        `default` is models.toml's `[fusion]` sampling, what `coolfusion generate`
        and the chat app use; None (a config without one) leaves the engine's own
        default, greedy.
        """
        fields = ("temperature", "top_p", "seed", "top_k", "min_p", "repeat_penalty", "repeat_last_n")
        given = {name: getattr(self, name) for name in fields if getattr(self, name) is not None}
        if not given:
            return default
        sampling = replace(default or Sampling(), **given)
        invalid = sampling.invalid_setting()
        if invalid is not None:
            field, problem = invalid
            raise ApiError(400, problem, code="invalid_value", param=field)
        return sampling

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(_Generation):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    tools: list[Any] | None = None
    tool_choice: str | dict | None = None
    functions: list[Any] | None = None
    function_call: str | dict | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    response_format: ResponseFormat | None = None

    def refuse_unsupported(self) -> None:
        super().refuse_unsupported()
        no_tools = "the models answer in text only, with no tool or function calls"
        no_logprobs = "its tokens come from several models with different vocabularies"
        _refuse_first({
            "tools": (bool(self.tools), no_tools),
            "tool_choice": (self.tool_choice not in (None, "none", "auto"), no_tools),
            "functions": (bool(self.functions), no_tools),
            "function_call": (self.function_call not in (None, "none", "auto"), no_tools),
            "logprobs": (bool(self.logprobs), no_logprobs),
            "top_logprobs": (self.top_logprobs not in (None, 0), no_logprobs),
            "response_format": (self.response_format is not None and self.response_format.type != "text",
                                "nothing holds the answer to JSON; ask for JSON in the prompt instead"),
        })

    def answer_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def engine_messages(self) -> list[Message]:
        messages = []
        for index, message in enumerate(self.messages):
            role = "system" if message.role == "developer" else message.role
            messages.append(Message(role, message.text(index)))
        if messages[-1].role == "assistant":
            raise ApiError(400, "the last message must not be the assistant's: there is nothing to answer",
                           param="messages")
        if not any(m.content.strip() for m in messages if m.role == "user"):
            raise ApiError(400, "messages hold no user text to answer", param="messages")
        return messages


class CompletionRequest(_Generation):
    prompt: str | list[str]
    echo: bool = False
    suffix: str | None = None
    logprobs: int | None = None
    best_of: int | None = None

    def refuse_unsupported(self) -> None:
        super().refuse_unsupported()
        _refuse_first({
            "echo": (self.echo, "every model reads the prompt through its chat template"),
            "suffix": (self.suffix is not None, "the models do not fill in the middle"),
            "logprobs": (self.logprobs is not None, "its tokens come from several models with different vocabularies"),
            "best_of": (self.best_of not in (None, 1), "the engine writes one answer per request"),
        })

    def engine_messages(self) -> list[Message]:
        """The prompt as one user turn: every model reads it through its own chat template."""
        prompt = self.prompt
        if isinstance(prompt, list):
            if len(prompt) != 1:
                raise ApiError(400, "send one prompt per request (a list of several is not supported)",
                               param="prompt")
            prompt = prompt[0]
        if not prompt.strip():
            raise ApiError(400, "the prompt is empty", param="prompt")
        return [Message("user", prompt)]
