"""`coolfusion serve`'s request bodies and response shapes, without a model (the server is in test_serve.py)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from coolfusion_local.api.errors import ApiError
from coolfusion_local.api.schemas import ChatCompletionRequest, CompletionRequest
from coolfusion_local.api.shapes import ResponseShape, finish_reason
from coolfusion_local.engine import Message
from coolfusion_local.engine.sampling import Sampling


def chat(**fields) -> ChatCompletionRequest:
    body = {"model": "coolfusion", "messages": [{"role": "user", "content": "hi"}], **fields}
    return ChatCompletionRequest.model_validate_json(json.dumps(body))


def test_messages_become_engine_messages():
    request = chat(messages=[{"role": "developer", "content": "be brief"},
                             {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}])
    assert request.engine_messages() == [Message("system", "be brief"), Message("user", "ab")]


@pytest.mark.parametrize("messages, param", [
    ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}], "messages"),
    ([{"role": "system", "content": "x"}, {"role": "user", "content": "  "}], "messages"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}], "messages[0].content"),
])
def test_conversations_with_nothing_to_answer_are_refused(messages, param):
    with pytest.raises(ApiError) as caught:
        chat(messages=messages).engine_messages()
    assert caught.value.status == 400 and caught.value.param == param


@pytest.mark.parametrize("fields", [{"max_tokens": 0}, {"max_tokens": "12"}, {"stream": "yes"}, {"temperature": 2.5},
                                    {"top_k": 1.5}, {"stop": [""]}, {"stop": ["x"] * 17}])
def test_wrong_values_and_types_fail_validation(fields):
    with pytest.raises(ValidationError):
        chat(**fields)


@pytest.mark.parametrize("raw, param", [
    ('"temperature": -1', "temperature"),
    ('"top_p": 0', "top_p"),
    ('"seed": -3', "seed"),
    ('"seed": 4294967295', "seed"),  # llama.cpp's "random seed" value
    ('"repeat_penalty": 1e400', "repeat_penalty"),  # JSON's way to write inf: was sent on as Infinity
    ('"top_k": 4294967297', "top_k"),  # was 1 after ctypes' uint32 wrap
    ('"repeat_last_n": 9999999999', "repeat_last_n"),
    ('"min_p": 1.5', "min_p"),
])
def test_sampling_values_out_of_range_are_refused_by_name(raw, param):
    body = ChatCompletionRequest.model_validate_json(
        '{"model": "coolfusion", "messages": [{"role": "user", "content": "hi"}], ' + raw + "}")
    with pytest.raises(ApiError) as caught:
        body.sampling(Sampling(temperature=0.8))
    assert caught.value.status == 400 and caught.value.param == param and caught.value.code == "invalid_value"
    assert caught.value.message.startswith(param)


def test_the_api_flags_and_models_toml_share_one_sampling_check():
    """The bounds live in Sampling.invalid_setting; the CLI and config read its phrase (problem())."""
    wrapped = Sampling(top_k=2**32 + 1)
    assert wrapped.invalid_setting() == ("top_k", wrapped.problem())
    assert Sampling(repeat_penalty=float("inf")).problem() is not None
    assert Sampling(top_k=2**31 - 1, repeat_last_n=2**31 - 1, seed=2**32 - 2).problem() is None


def test_unsupported_fields_are_refused_by_name():
    with pytest.raises(ApiError, match="n > 1"):
        chat(n=2).refuse_unsupported()
    with pytest.raises(ApiError, match="tools"):
        chat(tools=[{"type": "function"}]).refuse_unsupported()
    for field, value in (("echo", True), ("logprobs", 2), ("suffix", "x")):
        body = CompletionRequest.model_validate_json(json.dumps({"model": "m", "prompt": "p", field: value}))
        with pytest.raises(ApiError, match=field):
            body.refuse_unsupported()
    ignored = chat(user="someone", presence_penalty=0.5)  # accepted, and they change nothing
    ignored.refuse_unsupported()
    assert_same_answer_asked(ignored, chat())


UNHONOURED = {  # field -> a value that would change the answer or its shape
    "logprobs": True,
    "top_logprobs": 3,
    "tools": [{"type": "function", "function": {"name": "f"}}],
    "tool_choice": "required",
    "functions": [{"name": "f", "parameters": {}}],
    "function_call": {"name": "f"},
    "response_format": {"type": "json_object"},
    "n": 2,
}


@pytest.mark.parametrize("field", UNHONOURED)
def test_a_field_the_engine_cannot_honour_is_refused_by_name(field):
    with pytest.raises(ApiError) as caught:
        chat(**{field: UNHONOURED[field]}).refuse_unsupported()
    error = caught.value
    assert (error.status, error.param, error.type, error.code) == (
        400, field, "invalid_request_error", "unsupported_parameter")
    assert error.message.startswith(f"{field} is not supported")


def assert_same_answer_asked(request: ChatCompletionRequest, plain: ChatCompletionRequest) -> None:
    """`request` asks the engine for exactly what `plain` asks: the same messages, sampling, limit and stops."""
    default = Sampling(temperature=0.8, top_k=40)
    assert request.engine_messages() == plain.engine_messages()
    assert request.sampling(default) == plain.sampling(default) and request.sampling(None) == plain.sampling(None)
    assert (request.answer_limit(), request.stops()) == (plain.answer_limit(), plain.stops())


def test_fields_at_their_neutral_value_are_accepted():
    for neutral in (chat(logprobs=False, top_logprobs=0, n=1, tools=[], tool_choice="none", functions=[],
                         function_call="none", response_format={"type": "text"}),
                    chat(tool_choice="auto", function_call="auto")):  # with nothing to call: no call
        neutral.refuse_unsupported()
        assert_same_answer_asked(neutral, chat())


def test_sampling_fields_replace_the_servers_default_one_by_one():
    default = Sampling(temperature=0.8, top_k=40, seed=None)
    assert chat().sampling(default) is default
    assert chat().sampling(None) is None
    assert chat(temperature=0, seed=5).sampling(default) == Sampling(temperature=0.0, top_k=40, seed=5)
    assert chat(top_k=1).sampling(None) == Sampling(top_k=1)


def test_limits_and_stops():
    assert chat(max_tokens=5, max_completion_tokens=9).answer_limit() == 9
    assert chat(stop="END").stops() == ["END"] and chat().stops() is None


def test_finish_reasons_and_chunk_shapes():
    assert [finish_reason(r) for r in ("eos", "stop_string", "stopped", "max_tokens", "context_full", "loop")] == [
        "stop", "stop", "stop", "length", "length", "length"]
    shape = ResponseShape("coolfusion", chat=True)
    assert shape.id.startswith("chatcmpl-")
    assert shape.chunk(None, first=True)["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert shape.chunk(None, "length")["choices"][0] == {"index": 0, "delta": {}, "logprobs": None,
                                                         "finish_reason": "length"}
    plain = ResponseShape("coolfusion", chat=False)
    assert plain.whole("t", "stop", {}, {})["object"] == "text_completion"
