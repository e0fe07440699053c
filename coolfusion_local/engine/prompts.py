"""How each source model sees the conversation: its own chat template.

The same chat is fused across families, so every model gets the messages in
the format it was trained on: the Jinja chat template from its GGUF metadata,
a template override from models.toml, or a plain-text format for base models.

Two safety properties matter here:

* Templates come from downloaded files, so they are rendered in Jinja2's
  immutable sandbox (the class of CVE-2024-34359: a template that reaches
  Python internals must fail, not run code).
* User text must never become special tokens. The template is rendered with
  placeholders in place of message contents; the result is split back into
  template text (tokenised with special tokens parsed) and message text
  (tokenised as plain text), so a typed '<|im_end|>' stays characters.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from ..errors import CoolfusionError
from .events import Message
from .turns import alternating


class TemplateError(CoolfusionError):
    """A chat template that cannot (or must not) be rendered."""


@dataclass(frozen=True)
class PromptPart:
    text: str
    is_message: bool  # True: message content (plain text); False: template text


PLAIN_TEMPLATE = "plain"
_ROLE_NAMES = {"system": "System", "user": "User", "assistant": "Assistant"}
_PLACEHOLDER = re.compile("\ue000(\\d+)\ue001")


def _placeholder(index: int) -> str:
    # Private-use characters: no template produces them, no tokenizer merges them away.
    return f"\ue000{index}\ue001"


MAX_PROMPT_CHARS = 2_000_000  # far beyond any context; a template past it is hostile or broken
MAX_RENDER_SECONDS = 5.0


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus limits on what a template may make.

    The sandbox stops templates reaching Python internals, but not from
    exhausting memory: `{{ 'A' * 10**9 }}` or `{{ 9**9**9 }}` would happily run.
    """

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context, operator, left, right):
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > 64:
            raise SecurityError("exponent too large in a chat template")
        if operator == "*":
            for sequence, count in ((left, right), (right, left)):
                if isinstance(sequence, (str, list, tuple)) and isinstance(count, int):
                    if len(sequence) * count > MAX_PROMPT_CHARS:
                        raise SecurityError("a chat template tried to build a huge string")
        return super().call_binop(context, operator, left, right)


def _raise_exception(message: str) -> None:
    raise TemplateError(f"the chat template refused the conversation: {message}")


class ChatFormat:
    """Renders a conversation into prompt parts for one model."""

    def __init__(self, template: str | None, *, bos_token: str = "", eos_token: str = ""):
        self.is_plain = template is None or template.strip() == PLAIN_TEMPLATE
        self._bos_token = bos_token
        self._eos_token = eos_token
        self._template = None
        if not self.is_plain:
            environment = _BoundedSandbox(trim_blocks=True, lstrip_blocks=True)
            environment.globals["raise_exception"] = _raise_exception
            environment.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
            try:
                self._template = environment.from_string(template)
            except jinja2.TemplateError as error:
                raise TemplateError(f"the chat template does not parse: {error}") from None

    def stop_strings(self) -> tuple[str, ...]:
        """Text that means 'the next turn began' for models without an end token."""
        return ("\nUser:", "\nSystem:") if self.is_plain else ()

    def render(self, messages: list[Message]) -> list[PromptPart]:
        """The prompt up to the start of the assistant's answer."""
        messages = alternating(messages)  # strict templates refuse two user turns in a row
        if self.is_plain:
            return self._render_plain(messages)
        stand_ins = [{"role": m.role, "content": _placeholder(i)} for i, m in enumerate(messages)]
        try:
            rendered = self._render_bounded(
                messages=stand_ins,
                add_generation_prompt=True,
                bos_token=self._bos_token,
                eos_token=self._eos_token,
            )
        except SecurityError as error:
            raise TemplateError(f"the chat template tried something unsafe and was stopped: {error}") from None
        except TemplateError:
            raise
        except Exception as error:  # a template bug: undefined variable, bad filter...
            raise TemplateError(f"the chat template failed: {type(error).__name__}: {error}") from None
        parts: list[PromptPart] = []
        position = 0
        for match in _PLACEHOLDER.finditer(rendered):
            if match.start() > position:
                parts.append(PromptPart(rendered[position : match.start()], False))
            index = int(match.group(1))
            if index >= len(messages):
                raise TemplateError("the chat template produced an unknown placeholder")
            parts.append(PromptPart(messages[index].content, True))
            position = match.end()
        if position < len(rendered):
            parts.append(PromptPart(rendered[position:], False))
        return parts

    def _render_bounded(self, **variables) -> str:
        """Render chunk by chunk, refusing output past the size or time budget."""
        started = time.monotonic()
        chunks, size = [], 0
        for chunk in self._template.generate(**variables):
            size += len(chunk)
            chunks.append(chunk)
            if size > MAX_PROMPT_CHARS:
                raise TemplateError("the chat template produced an absurdly long prompt and was stopped")
            if time.monotonic() - started > MAX_RENDER_SECONDS:
                raise TemplateError("the chat template took too long to render and was stopped")
        return "".join(chunks)

    def _render_plain(self, messages: list[Message]) -> list[PromptPart]:
        parts: list[PromptPart] = []
        for message in messages:
            parts.append(PromptPart(f"{_ROLE_NAMES.get(message.role, message.role.title())}: ", False))
            parts.append(PromptPart(message.content, True))
            parts.append(PromptPart("\n", False))
        parts.append(PromptPart("Assistant:", False))
        return parts
