"""How each source model sees the conversation: its own chat template.

The same chat is fused across families, so every model gets the messages in
the format it was trained on: the Jinja chat template from its GGUF metadata,
a template override from models.toml, or a plain-text format for base models.

Two safety properties matter here:

* Templates come from downloaded files, so they are rendered in Jinja2's
  immutable sandbox (the class of CVE-2024-34359: a template that reaches
  Python internals must fail, not run code), with every value it makes
  bounded and in a worker process that is killed past a time or memory limit
  (a template must not hang the app or exhaust memory): see template_render.py.
* User text must never become special tokens. The template is rendered with
  placeholders in place of message contents; the result is split back into
  template text (tokenised with special tokens parsed) and message text
  (tokenised as plain text), so a typed '<|im_end|>' stays characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import CoolfusionError
from .events import Message
from .template_render import MAX_RENDER_SECONDS, RenderRefused, check_template, render_template
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


# How each way a template can fail reads, after "the chat template ".
_REFUSALS = {
    "parse": "does not parse: {}",
    "refused": "refused the conversation: {}",
    "unsafe": "tried something unsafe and was stopped: {}",
    "too_long": "produced an absurdly long prompt and was stopped",
    "too_slow": "took too long to render and was stopped",
    "memory": "used too much memory and was stopped",
    "crashed": "stopped its renderer: {}",
    "failed": "failed: {}",
}


def _template_error(refusal: RenderRefused) -> "TemplateError":
    wording = _REFUSALS.get(refusal.kind, _REFUSALS["failed"])
    return TemplateError("the chat template " + wording.format(refusal))


class ChatFormat:
    """Renders a conversation into prompt parts for one model."""

    def __init__(self, template: str | None, *, bos_token: str = "", eos_token: str = ""):
        self.is_plain = template is None or template.strip() == PLAIN_TEMPLATE
        self._bos_token = bos_token
        self._eos_token = eos_token
        self._template = None if self.is_plain else template
        self.render_seconds = MAX_RENDER_SECONDS
        if self._template is not None:
            try:
                check_template(self._template)
            except RenderRefused as refusal:
                raise _template_error(refusal) from None

    def stop_strings(self) -> tuple[str, ...]:
        """Text that means 'the next turn began' for models without an end token."""
        return ("\nUser:", "\nSystem:") if self.is_plain else ()

    def render(self, messages: list[Message]) -> list[PromptPart]:
        """The prompt up to the start of the assistant's answer."""
        messages = alternating(messages)  # strict templates refuse two user turns in a row
        if self.is_plain:
            return self._render_plain(messages)
        stand_ins = [{"role": m.role, "content": _placeholder(i)} for i, m in enumerate(messages)]
        variables = {
            "messages": stand_ins,
            "add_generation_prompt": True,
            "bos_token": self._bos_token,
            "eos_token": self._eos_token,
        }
        try:
            rendered = render_template(self._template, variables, self.render_seconds)
        except RenderRefused as refusal:
            raise _template_error(refusal) from None
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

    def _render_plain(self, messages: list[Message]) -> list[PromptPart]:
        parts: list[PromptPart] = []
        for message in messages:
            parts.append(PromptPart(f"{_ROLE_NAMES.get(message.role, message.role.title())}: ", False))
            parts.append(PromptPart(message.content, True))
            parts.append(PromptPart("\n", False))
        parts.append(PromptPart("Assistant:", False))
        return parts
