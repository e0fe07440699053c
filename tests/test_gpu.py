"""The product with every layer on a llama.cpp GPU device (`pytest -m gpu`, run by scripts/gpu-test).

On these CPU-only machines the device is llama.cpp's Vulkan backend on Mesa's
software Vulkan driver (lavapipe, "llvmpipe"; Mesa 25, see scripts/gpu-test):
slow (about 0.3 s a token for SmolLM2; each shader compiled on first use, once
per machine with the script's shader cache: half an hour cold) but a real
device with device buffers, a device KV cache and logits copied back to the
host, the path CUDA and Metal take. Each test decodes a few tokens and the
models load once per session. Skipped, with the reason, where llama.cpp has no
GPU build or no device (a CPU-only llama-cpp-python skips at once).

GPU answers are not byte-equal to CPU answers (kernels differ by batch size:
llama.cpp #3014, #4458, #27407), so GPU and CPU are compared by tolerance on
log-probabilities, never by text.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

from conftest import load_members
from coolfusion_local.cli import main
from coolfusion_local.engine.drafting import DraftSettings
from coolfusion_local.engine.events import AnswerDone, Message, ModelLoaded
from coolfusion_local.engine.fusion import generate, prompt_tokens
from coolfusion_local.engine.modes import answer_settings
from coolfusion_local.fusion_engine import FusionEngine, load_config
from coolfusion_local.models.device_fit import HEADROOM, estimate
from coolfusion_local.runtime import exact_batch_cache
from coolfusion_local.runtime.devices import offload_devices
from coolfusion_local.tui.screens.models import ModelsScreen
from models_env import Home
from serve_helpers import start_server
from tui_helpers import make_app, visible_text, wait_until

pytestmark = pytest.mark.gpu


def _skip_reason() -> str | None:
    import llama_cpp

    if not llama_cpp.llama_supports_gpu_offload():
        return ("this llama-cpp-python has no GPU backend (llama_supports_gpu_offload() is false); "
                "scripts/gpu-test builds one with Vulkan")
    if not offload_devices():
        return ("llama.cpp finds no GPU device (for Mesa's software Vulkan device set GGML_VK_VISIBLE_DEVICES=0, "
                "as scripts/gpu-test does)")
    return None


SKIP = _skip_reason()
if SKIP:
    pytestmark = [pytest.mark.gpu, pytest.mark.skip(reason=SKIP)]

PAIR = ("qwen-coder-0.5b", "smollm2-135m")
SMOLLM_ONLY = '[[models]]\nname = "smollm2-135m"\npypi = "smollm2-135m-instruct"\n'
QUESTION = "What is the capital of France? Answer in one word."


@pytest.fixture(scope="session")
def device_members(offline_model_path):
    """device_members(*names) -> Members with every layer on the device, loaded once per session."""
    get, close = load_members(offline_model_path, n_ctx=512, n_gpu_layers=-1)
    yield get
    close()


@pytest.fixture(scope="session")
def gpu_home(tmp_path_factory):
    """One sealed home for the session: its cache starts empty (no exact batch size recalled, the
    state the crash needed) and keeps what the first probe measured, so the later processes
    (bench, serve) read it instead of probing again at a minute or more each on a software GPU."""

    return Home(tmp_path_factory.mktemp("gpu-home"))


def _answer(members, question: str = QUESTION, mode: str = "cool", max_tokens: int = 6, draft: str = "auto"):

    for member in members:
        member.model.forget()
    settings = answer_settings(mode, max_tokens=max_tokens, draft=DraftSettings(draft))
    events = list(generate(members, [Message("user", question)], settings))
    done = next(e for e in events if isinstance(e, AnswerDone))
    assert done.error is None, done.error
    return done


def _on_device(model) -> bool:
    return model.n_gpu_layers == model.n_layers + 1 and model.device is not None


def _write_config(folder, text: str):
    path = folder / "models.toml"
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- the crash of issue 28


def test_the_first_answer_measures_its_exact_batch_in_a_child_and_survives(device_members, gpu_home, monkeypatch):
    """Regression: with no cached size, the first answer's probe (spare sequence rolled back, then
    batched decodes) died of SIGSEGV in the user's process on Vulkan 3 runs in 5."""

    gpu_home.apply(monkeypatch)
    assert not exact_batch_cache.cache_file().exists()
    member = device_members(*PAIR)[1]  # SmolLM2: the same path as the lead's, at a fraction of the time
    model = member.model
    model._exact_batch = None
    model.forget()
    model.start_answer(prompt_tokens(member, [Message("user", QUESTION)]))  # sequence 0 holds a prompt
    size = model.exact_batch_size()
    assert 1 <= size <= 8 and model.exact_batch_probe_seconds > 0
    if model.exact_batch_note:  # the child crashed or could not run: the safe size, and the user reads why
        assert size == 1, model.exact_batch_note
    else:
        assert exact_batch_cache.cache_file().exists()  # kept for the next process
    # This process goes on answering from the same cache.
    steps = [model.step().token for _ in range(2)]
    assert len(steps) == 2


# --------------------------------------------------------------------------- fusion on the device


def test_the_default_pair_fuses_on_the_device_greedy(device_members):
    members = device_members(*PAIR)
    assert all(_on_device(m.model) for m in members)
    assert len({m.model.device for m in members}) == 1
    done = _answer(members, max_tokens=3, draft="off")
    assert "Paris" in done.text, done.text  # "Paris" on the CPU too: a one-word question


def test_three_members_on_one_device(device_members):
    members = device_members(*PAIR, "gemma3-270m")
    assert all(_on_device(m.model) for m in members)
    done = _answer(members, max_tokens=2, draft="off")
    assert done.text.strip()


def test_an_answer_after_a_rejected_draft_equals_a_fresh_run(device_members):

    member = device_members(*PAIR)[1]  # SmolLM2: the cheapest on a software device
    model = member.model
    prompt = prompt_tokens(member, [Message("user", QUESTION)])
    model.forget()
    model.start_answer(prompt)
    first = model.next_greedy_token()
    right_then_wrong = [first, *model.tokenize(b" zebra zebra zebra")]
    kept = model.check_draft(right_then_wrong, model.exact_batch_size())
    assert kept >= 1 and model.hidden == right_then_wrong[:kept]
    steps = [model.step().token for _ in range(kept + 2)]  # past the rolled-back cells
    model.forget()
    model.start_answer(prompt)
    assert steps == [model.step().token for _ in range(kept + 2)]


def test_cool_r_scoring_rows_on_the_device_match_the_cpu(device_members, offline_members):
    """Cool+R scores whole answers with batched logits rows over candidate sequences."""

    def scores(member):
        model = member.model
        model.forget()
        prompt = prompt_tokens(member, [Message("user", QUESTION)])
        model.start_answer(prompt)
        start = len(prompt)
        requests = [(start, model.tokenize(b"Paris."), True), (start, model.tokenize(b"Lyon, I think."), True)]
        return [s.mean_nll for s in model.score(requests)]

    on_device = scores(device_members(*PAIR)[1])
    on_cpu = scores(offline_members("smollm2-135m")[0])
    assert on_device[0] < on_device[1]  # the right answer scores better, as on the CPU
    # Measured on lavapipe: 2.444 vs 2.372 and 3.398 vs 3.452 nats per token (differences 0.07, 0.05).
    assert np.allclose(on_device, on_cpu, atol=0.15), (on_device, on_cpu)


def test_gpu_and_cpu_log_probabilities_agree_within_a_tolerance(device_members, offline_members):

    def log_probs(member, steps: int = 3):
        model = member.model
        model.forget()
        model.start_answer(prompt_tokens(member, [Message("user", QUESTION)]))
        rows = []
        for _ in range(steps):
            row = model._row.astype(np.float64)
            rows.append(row - (row.max() + np.log(np.exp(row - row.max()).sum())))
            model.step()
        return rows

    device_rows = log_probs(device_members(*PAIR)[1])
    cpu_rows = log_probs(offline_members("smollm2-135m")[0])
    for on_device, on_cpu in zip(device_rows, cpu_rows):
        top = np.argsort(on_cpu)[-5:]  # the tokens that matter
        assert int(on_device.argmax()) == int(on_cpu.argmax())
        # Measured on lavapipe: up to 0.16 nats on the top five tokens, the same argmax.
        assert np.abs(on_device[top] - on_cpu[top]).max() < 0.3


# --------------------------------------------------------------------------- what users see


def test_models_check_names_the_device_and_the_layers(tmp_path, gpu_home, monkeypatch, capsys):
    # In this process (the CLI's own main): a software GPU builds its pipelines once per process.

    gpu_home.apply(monkeypatch)
    config = _write_config(tmp_path, SMOLLM_ONLY)
    code = main(["models", "check", "--config", str(config)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert re.search(r"smollm2-135m: ok .*, 31/31 layers on \S+", out), out
    assert re.search(r"GPU fit on .*: smollm2-135m 31/31 layers", out), out


async def test_the_chat_models_panel_names_the_device(tmp_path, monkeypatch, offline_model_path):

    monkeypatch.setenv("COOLFUSION_DATA_DIR", str(tmp_path / "data"))
    offline_model_path("smollm2-135m")  # assembled before the app starts
    engine = FusionEngine(load_config(_write_config(tmp_path, SMOLLM_ONLY)))
    app = make_app(engine)
    try:
        async with app.run_test(size=(160, 40)) as pilot:
            await wait_until(pilot, lambda: engine.status("smollm2-135m").state == "loaded", timeout=300,
                             what="the model to load on the device")
            await pilot.press("ctrl+o")
            await wait_until(pilot, lambda: isinstance(app.screen, ModelsScreen))
            table = app.screen.query_one("#models-table")
            device = engine.status("smollm2-135m").info.device
            await wait_until(pilot, lambda: "31/31 on" in visible_text(table), what="the GPU column")
            assert device and device.split()[0] in visible_text(table)
    finally:
        engine.close()


def test_bench_decode_costs_on_the_device(tmp_path, gpu_home):
    """Run as a user runs it. Regression: on lavapipe (Mesa 22.3) the timing's batched decodes after
    removing some of a sequence's cells died of SIGSEGV in the driver, taking the command down; the
    timing now runs in a child process, and on a driver without that fault it measures every size."""
    config = _write_config(tmp_path, SMOLLM_ONLY)
    # The exact batch size the first test measured is read back from gpu_home, not probed again.
    result = subprocess.run([sys.executable, "-m", "coolfusion_local", "bench", "--config", str(config),
                             "--decode-costs", "--json"], capture_output=True, text=True, timeout=1200,
                            env=gpu_home.env())
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    (cost,) = json.loads(result.stdout)["decode_costs"]
    assert cost["model"] == "smollm2-135m" and cost["exact_batch"] >= 1 and "error" not in cost
    assert list(cost["ms_per_decode"]) == ["1", "2", "3", "4", "8", "16"]
    assert all(ms > 0 for ms in cost["ms_per_decode"].values())


def test_the_api_serves_from_the_device(tmp_path, gpu_home):

    config = _write_config(tmp_path, SMOLLM_ONLY)
    server = start_server(tmp_path, "--config", str(config), env=gpu_home.env(), timeout=600)
    try:
        reply = server.request("POST", "/v1/chat/completions", {
            "model": "coolfusion", "messages": [{"role": "user", "content": QUESTION}],
            "max_tokens": 3, "temperature": 0}, timeout=600)
        assert reply.status == 200, reply.body
        assert reply.json()["choices"][0]["message"]["content"].strip()
        assert re.search(r"31/31 layers on \S+", server.stderr()), server.stderr()
    finally:
        assert server.stop(signal.SIGINT) == 0, server.stderr()


# --------------------------------------------------------------------------- the fit


def test_members_fit_a_budget_smaller_than_they_need(tmp_path, monkeypatch, offline_model_path):
    """COOLFUSION_GPU_MEMORY below the members' needs: the lead whole, the rest as they fit, and answers."""

    Home(tmp_path).apply(monkeypatch)
    names = ("qwen-coder-0.5b", "smollm2-135m", "gemma3-270m")
    paths = {name: offline_model_path(name) for name in names}
    need = {name: estimate(name, paths[name], 512) for name in names}
    lead_whole = need["qwen-coder-0.5b"].device_bytes(25)
    budget = int((lead_whole + need["smollm2-135m"].device_bytes(31) // 2) / (1 - HEADROOM))
    monkeypatch.setenv("COOLFUSION_GPU_MEMORY", str(budget))
    config = _write_config(tmp_path, "".join(
        f'[[models]]\nname = "{name}"\npath = "{paths[name]}"\nn_ctx = 512\n'
        + ('chat_template = "plain"\n' if name == "gemma3-270m" else "") for name in names))
    with FusionEngine(load_config(config)) as engine:
        events = [e for e in engine.load() if isinstance(e, ModelLoaded)]
        loaded = {e.model: e for e in events}
        assert set(loaded) == set(names)
        notes = [n for e in events for n in e.notices if n.startswith("GPU fit on")]
        assert len(notes) == 1 and "set by COOLFUSION_GPU_MEMORY" in notes[0], notes
        assert loaded["qwen-coder-0.5b"].n_gpu_layers == 25  # the lead, whole
        assert 0 < loaded["smollm2-135m"].n_gpu_layers < 31  # then part of the next
        assert loaded["gemma3-270m"].n_gpu_layers == 0  # and nothing left for the third
        used = sum(need[n].device_bytes(loaded[n].n_gpu_layers) for n in names)
        assert used <= budget

        done = [e for e in engine.generate([Message("user", QUESTION)], max_tokens=2, draft="off") if isinstance(e, AnswerDone)]
        assert done[0].error is None and done[0].text.strip()
