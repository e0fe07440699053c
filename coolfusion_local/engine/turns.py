"""The conversation as every chat template accepts it: user and assistant turns alternate.

Strict templates (Gemma 3, Mistral, Llama 2) raise "roles must alternate" when
two user turns follow each other, which is what a chat holds after an answer
stopped before its first word (or one that failed): the empty answer carries
nothing, so it is left out, and the two questions around it become one turn.

Why merge rather than keep an empty assistant turn: every template renders one
user turn, while an empty model turn (`<start_of_turn>model\n<end_of_turn>`)
is a worked example of answering with nothing, which small models copy. The
same holds for any caller (an API client may send two user messages in a row).
"""

from __future__ import annotations

from .events import Message

JOIN = "\n\n"


def alternating(messages: list[Message]) -> list[Message]:
    """`messages` with empty turns left out and consecutive turns of one role joined.

    The last message is kept even when empty: it is what the answer answers.
    """
    turns: list[Message] = []
    for index, message in enumerate(messages):
        if not message.content.strip() and index < len(messages) - 1:
            continue
        if turns and turns[-1].role == message.role:
            joined = JOIN.join(part for part in (turns[-1].content, message.content) if part.strip())
            turns[-1] = Message(message.role, joined)
        else:
            turns.append(message)
    return turns
