"""Chat templates from downloaded files cannot hang the app or exhaust its memory.

Every hostile template below fails in one line, within a bounded time, and the
application's own memory does not move: the checks inside the sandbox stop most
of them before they allocate anything, the worker process's memory and time
limits stop the rest (see engine/template_render.py). The real models'
templates render exactly as in plain Jinja's sandbox.
"""

from __future__ import annotations

import resource
import time
from datetime import datetime

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from coolfusion_local.engine import template_render
from coolfusion_local.engine.events import Message
from coolfusion_local.engine.prompts import ChatFormat, TemplateError
from coolfusion_local.models.gguf_info import read_gguf_metadata
from conftest import OFFLINE_MODELS, VOCAB_FAMILIES

RENDER_SECONDS = 1.5  # the tests' own limit, to keep the corpus quick; the product uses 5 s
BIG = "x" * 1_000_000

HOSTILE = {
    # Jinja's ** is left-associative: ((((9**64)**64)**64)**64)**64, past an "exponent <= 64" check.
    "left-assoc-power": "{{ 9**64**64**64**64**64 }}",
    "power-tower": "{{ 2**(2**(2**(2**5))) }}",
    "squaring-loop": "{% set ns = namespace(n=7) %}{% for i in range(64) %}{% set ns.n = ns.n * ns.n %}{% endfor %}{{ ns.n }}",
    "printf-width": "{{ '%999999999s' % '' }}",
    "printf-star-width": "{{ '%*s' % (999999999, '') }}",
    "printf-filter": "{{ '%999999999d'|format(1) }}",
    "center-method": "{{ ''.center(999999999) }}",
    "center-filter": "{{ ''|center(999999999) }}",
    "ljust": "{{ 'a'.ljust(10**9) }}",
    "zfill": "{{ '1'.zfill(10**9) }}",
    "format-width": "{{ '{:>999999999}'.format('') }}",
    "format-nested-width": "{{ '{:>{w}}'.format('', w=999999999) }}",
    "list-times-join": "{% set s = 'x' * 1000000 %}{{ ([s] * 100000)|join }}",
    "join-method": "{% set s = 'x' * 1000000 %}{{ ''.join([s, s, s, s, s]) }}",
    "string-times-int": "{{ 'A' * 10**9 }}",
    "huge-range": "{{ range(10**12)|list }}",
    "replace-everywhere": "{% set s = 'x' * 100000 %}{{ s.replace('', s) }}",
    "indent-many-lines": "{% set s = '\\n' * 1000000 %}{{ s|indent(1000) }}",
    "batch-fill": "{{ [1]|batch(10**9, 0)|list }}",
    "slice-parts": "{{ [1]|slice(10**9)|list }}",
    "tojson-indent": "{{ messages|tojson(indent=10**8) }}",
    "lipsum": "{{ lipsum(10**7) }}",
    "to-bytes": "{{ (1).to_bytes(10**9, 'big') }}",
    "expandtabs": "{{ ('\\t' * 100000).expandtabs(100000) }}",
    "translate": "{{ 'aaaa'.translate({97: 'x' * 1000000}) }}",
    "doubling-namespace": "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
    "doubling-recursion": "{% macro f(s) %}{{ f(s ~ s) }}{% endmacro %}{{ f('x') }}",
    # Nothing below calls anything the sandbox sees: only the worker's limits stop them.
    "silent-nested-loops": "{% set r = range(100000) %}{% for a in r %}{% for b in r %}{% endfor %}{% endfor %}",
    "concat-chain": "{% set s = 'x' * 1999999 %}{{ " + " ~ ".join(["s"] * 600) + " }}",
}


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.fixture
def quick_format():
    def make(template: str) -> ChatFormat:
        chat = ChatFormat(template, bos_token="<s>", eos_token="</s>")
        chat.render_seconds = RENDER_SECONDS
        return chat

    return make


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_template_fails_in_one_line_within_bounds(quick_format, case):
    chat = quick_format(HOSTILE[case])
    before = rss_mib()
    started = time.monotonic()
    with pytest.raises(TemplateError) as caught:
        chat.render([Message("user", "hi")])
    elapsed = time.monotonic() - started
    message = str(caught.value)
    assert message.startswith("the chat template ") and "\n" not in message and len(message) < 300, message
    assert elapsed < RENDER_SECONDS + 3, f"{case} took {elapsed:.1f} s"
    assert rss_mib() - before < 50, "the application's own memory grew"


def test_the_renderer_comes_back_after_it_was_killed(quick_format):
    chat = quick_format("{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}")
    assert [p.text for p in chat.render([Message("user", "hi")])] == ["user: ", "hi", "\n"]
    with pytest.raises(TemplateError, match="took too long"):
        quick_format(HOSTILE["silent-nested-loops"]).render([Message("user", "hi")])
    assert [p.text for p in chat.render([Message("user", "again")])] == ["user: ", "again", "\n"]


def test_a_template_that_refuses_the_conversation_says_why(quick_format):
    chat = quick_format("{{ raise_exception('roles must alternate') }}")
    with pytest.raises(TemplateError, match="^the chat template refused the conversation: roles must alternate$"):
        chat.render([Message("user", "hi")])


def test_a_template_that_does_not_parse_is_refused_at_once():
    with pytest.raises(TemplateError, match="^the chat template does not parse: "):
        ChatFormat("{% for m in messages %}")


# ---------------------------------------------------------------------------- real templates


def _gguf_template(path) -> str | None:
    template = read_gguf_metadata(path).get("tokenizer.chat_template")
    return template if isinstance(template, str) else None


@pytest.fixture(scope="module")
def real_templates(vocab_dir, offline_model_path) -> dict[str, str]:
    found = {family: _gguf_template(vocab_dir / name) for family, name in VOCAB_FAMILIES.items()}
    found.update({name: _gguf_template(offline_model_path(name)) for name in OFFLINE_MODELS})
    return {name: template for name, template in found.items() if template}


CONVERSATIONS = [
    [Message("user", "hi")],
    [Message("system", "Be brief."), Message("user", "hi")],
    [Message("system", "s"), Message("user", "u1"), Message("assistant", "a1"), Message("user", "u2")],
    [Message("user", "u1"), Message("assistant", "a1"), Message("user", "u2")],
]


def _plain_jinja(template: str, variables: dict) -> str:
    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(message):
        raise ValueError(message)

    environment.globals.update(raise_exception=raise_exception, strftime_now=lambda f: datetime.now().strftime(f))
    return environment.from_string(template).render(**variables)


def test_real_templates_render_exactly_as_plain_jinja(real_templates):
    assert {"qwen2", "gemma-4", "command-r", "qwen-coder-0.5b", "smollm2-135m"} <= set(real_templates)
    for name, template in real_templates.items():
        for conversation in CONVERSATIONS:
            variables = {
                "messages": [{"role": m.role, "content": m.content} for m in conversation],
                "add_generation_prompt": True,
                "bos_token": "<s>",
                "eos_token": "</s>",
            }
            try:
                expected = _plain_jinja(template, variables)
            except ValueError:  # the template refuses this conversation (e.g. a system turn)
                with pytest.raises(template_render.RenderRefused):
                    template_render.render_template(template, variables)
                continue
            assert template_render.render_template(template, variables) == expected, name
