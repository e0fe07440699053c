"""A served member samples with the answer's settings, and a seed makes its answers reproducible."""

from __future__ import annotations

import pytest

from coolfusion_local.engine.events import AnswerDone, Message
from coolfusion_local.engine.sampling import Sampling
from remote_servers import LlamaServer
from test_remote import KEY, KEY_VARIABLE, engine_for, local_entry, remote_entry

pytestmark = pytest.mark.models

QUESTION = [Message("user", "Write one sentence about the sea.")]


def test_a_seeded_sampled_answer_with_a_served_member_repeats(offline_model_path, monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    server = LlamaServer(offline_model_path("qwen-coder-0.5b"), api_key=KEY)
    engine, _ = engine_for(remote_entry(server.url), local_entry("smollm2-135m"))
    try:
        def ask(seed: int) -> AnswerDone:
            engine.forget_cached_text()
            sampling = Sampling(temperature=1.0, top_k=40, top_p=0.95, min_p=0.05, seed=seed)
            done = list(engine.generate(QUESTION, max_tokens=20, sampling=sampling))[-1]
            assert done.stop_reason in ("eos", "max_tokens"), done.error
            return done

        first, again = ask(11), ask(11)
        assert first.text and first.text == again.text
        others = {ask(seed).text for seed in (12, 13, 14)}
        assert others - {first.text}, "three other seeds all gave the same answer: the server did not sample"
        solo = list(engine.generate(QUESTION, max_tokens=12, mode="solo:qwen-remote",
                                    sampling=Sampling(temperature=1.0, seed=5)))[-1]
        assert solo.stop_reason in ("eos", "max_tokens"), solo.error
    finally:
        engine.close()
        server.stop()
