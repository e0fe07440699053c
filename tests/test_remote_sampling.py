"""A served member samples with the answer's settings: the server draws the tokens.

Solo answers only: llama-cpp-python's server needs about half a second per
log-probability it returns, and a fused sampled answer scores far more often
than a greedy one. That fused answers go through the same `step` is covered by
the fusion tests; what is particular to a served member is that the server
samples. The seed goes with every request (vLLM reproduces an answer from it),
but llama-cpp-python 0.3's server does not give the same tokens twice for one
seed, so reproducibility is not asserted against it (docs/remote.md).
"""

from __future__ import annotations

import pytest

from coolfusion_local.engine.events import AnswerDone, Message
from coolfusion_local.engine.sampling import Sampling
from remote_servers import LlamaServer
from test_remote import KEY, KEY_VARIABLE, engine_for, remote_entry

pytestmark = pytest.mark.models

QUESTION = [Message("user", "Write one sentence about the sea.")]


def test_a_served_member_samples_when_the_answer_samples(offline_model_path, monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    server = LlamaServer(offline_model_path("qwen-coder-0.5b"), api_key=KEY)
    engine, _ = engine_for(remote_entry(server.url))
    try:
        def ask(seed: int) -> str:
            engine.forget_cached_text()
            sampling = Sampling(temperature=1.5, top_k=100, top_p=1.0, min_p=0.0, seed=seed)
            done = list(engine.generate(QUESTION, max_tokens=8, mode="solo:qwen-remote", sampling=sampling))[-1]
            assert isinstance(done, AnswerDone) and done.stop_reason in ("eos", "max_tokens"), done.error
            return done.text

        answers = {ask(seed) for seed in (11, 12, 13)}
        assert all(answers) and len(answers) > 1, "three seeds at temperature 1.5 gave one answer: nothing sampled"
        greedy = Sampling(temperature=0.0)
        twice = {list(engine.generate(QUESTION, max_tokens=8, mode="solo:qwen-remote", sampling=greedy))[-1].text
                 for _ in range(2)}
        assert len(twice) == 1
    finally:
        engine.close()
        server.stop()
