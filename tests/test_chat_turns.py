"""An answer stopped before its first word must not break the rest of the chat.

Such an answer is empty, so the history sends two questions in a row; strict
templates (Gemma 3, Mistral: "roles must alternate") refused every later
question of that chat. The prompt builder now joins them into one user turn.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from llama_cpp.llama_chat_format import MISTRAL_INSTRUCT_CHAT_TEMPLATE
from tui_helpers import data_dir, idle, send, wait_until  # noqa: F401

from coolfusion_local.engine.events import Message
from coolfusion_local.engine.prompts import ChatFormat
from coolfusion_local.engine.turns import alternating
from coolfusion_local.tui.store import Store, StoredMessage
from coolfusion_local.tui.session import ChatSession

# Gemma 3's chat template (google/gemma-3-*-it tokenizer_config.json), text content only.
GEMMA3_TEMPLATE = """{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}
    {{- message['content'] | trim -}}
    {{ '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{ '<start_of_turn>model\n' }}
{%- endif -%}
"""

STRICT = {"gemma-3": GEMMA3_TEMPLATE, "mistral": MISTRAL_INSTRUCT_CHAT_TEMPLATE}


def chat_after_an_empty_answer() -> ChatSession:
    """A chat as the app holds it: a question, its answer stopped before the first word, a new question."""
    session = ChatSession(Store(None))
    session.add(StoredMessage("user", "Write a poem."))
    session.add(StoredMessage("assistant", "", stop_reason="stopped"))
    session.add(StoredMessage("user", "About cats, please."))
    return session


def prompt_text(template: str, messages: list[Message]) -> str:
    return "".join(part.text for part in ChatFormat(template, bos_token="<bos>", eos_token="</s>").render(messages))


@pytest.mark.parametrize("family", sorted(STRICT))
def test_a_strict_template_takes_the_chat_after_an_empty_answer(family):
    prompt = prompt_text(STRICT[family], chat_after_an_empty_answer().history())
    assert "Write a poem.\n\nAbout cats, please." in prompt  # one user turn


@pytest.mark.parametrize("family", sorted(STRICT))
def test_a_strict_template_takes_two_questions_in_a_row_from_any_caller(family):
    messages = [Message("user", "Q1"), Message("assistant", "  "), Message("user", "Q2"), Message("user", "Q3")]
    assert "Q1\n\nQ2\n\nQ3" in prompt_text(STRICT[family], messages)


def test_gemma_3_sees_one_user_turn_and_no_empty_model_turn():
    history = [Message("system", "Be brief."), *chat_after_an_empty_answer().history()]
    assert prompt_text(GEMMA3_TEMPLATE, history) == (
        "<bos><start_of_turn>user\nBe brief.\n\nWrite a poem.\n\nAbout cats, please.<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_alternating_keeps_real_turns_and_the_last_message():
    turns = [Message("system", "S"), Message("user", "a"), Message("assistant", "b"), Message("user", "")]
    assert alternating(turns) == turns
    assert alternating([Message("user", "a"), Message("user", "")]) == [Message("user", "a")]
    assert alternating([Message("user", "a"), Message("assistant", ""), Message("assistant", "c")]) == [
        Message("user", "a"), Message("assistant", "c")]


# --------------------------------------------------------------------------- the real chat app


@pytest.mark.models
async def test_a_real_model_with_gemma_3_s_template_answers_after_a_stopped_empty_answer(offline_model_path):
    """The chat reopened after an empty answer; the next question is answered, not refused."""
    from coolfusion_local.config import ModelSpec
    from coolfusion_local.fusion_engine import FusionEngine, load_config
    from coolfusion_local.tui.app import CoolfusionApp
    from coolfusion_local.tui.widgets.message_box import AnswerBox

    store = Store.open_default()
    conversation = store.create_conversation("stopped at once")
    store.add_message(conversation, StoredMessage("user", "Write a poem."))
    store.add_message(conversation, StoredMessage("assistant", "", stop_reason="stopped"))
    store.close()

    spec = ModelSpec(name="smol", path=offline_model_path("smollm2-135m"), n_ctx=512,
                     chat_template=GEMMA3_TEMPLATE)
    config = replace(load_config(Path(__file__).resolve().parents[1] / "models.toml"), models=(spec,))
    app = CoolfusionApp(lambda: FusionEngine(config, mode="solo:smol"), Store.open_default(),
                        model_names=["smol"], mode="solo:smol", max_tokens=8)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: any(v.state == "loaded" for v in app.model_views), timeout=120)
        app.chat.session.open(conversation)
        await app.chat.show_conversation()
        await send(pilot, "About cats, please.")
        await wait_until(pilot, lambda: idle(app) and len(app.chat.query(AnswerBox)) == 2, timeout=120)
        answer = app.chat.query(AnswerBox).last().message
        assert answer.error is None, answer.error
        assert answer.content.strip() and answer.stop_reason in ("eos", "max_tokens", "stop_string")
