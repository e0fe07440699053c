"""Probes of llama.cpp run in a child process, so a native crash kills the child, not the user's.

The AMX probe: load a model with llama.cpp's extra buffer types and decode.
Run as `python -m coolfusion_local.runtime.probe_child MODEL.gguf [--without-extra-buffers]`
by `extra_buffers`. If llama.cpp's AMX kernels fault on this CPU, this process
dies by SIGSEGV, SIGILL, SIGBUS or SIGABRT (an exception code on Windows) and
the parent reads that from its exit status (`child_exit`); it prints "ok"
otherwise. Exit code 3: the model could not be loaded (no verdict).
`--without-extra-buffers` is the control run: a crash there is not the AMX kernels'.
(The child of the measurements of a model with GPU layers is engine/device_probe_child.py.)
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PROMPT_TOKENS = 32  # a prompt-sized batch: the path the first answer takes
SINGLE_STEPS = 4  # then token by token, as generation does


def main(argv: list[str]) -> int:
    with_extra_buffers = "--without-extra-buffers" not in argv
    argv = [arg for arg in argv if arg != "--without-extra-buffers"]
    if len(argv) != 1:
        print("usage: python -m coolfusion_local.runtime.probe_child MODEL.gguf [--without-extra-buffers]",
              file=sys.stderr)
        return 2
    import llama_cpp

    from .cpu import simulated_amx

    @llama_cpp.llama_log_callback
    def quiet(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        pass

    llama_cpp.llama_log_set(quiet, ctypes.c_void_p())
    llama_cpp.llama_backend_init()
    params = llama_cpp.llama_model_default_params()
    params.n_gpu_layers = 0  # the CPU's kernels are what is probed
    params.use_extra_bufts = with_extra_buffers
    model = llama_cpp.llama_model_load_from_file(argv[0].encode(), params)
    if not model:
        print(f"cannot load {argv[0]}", file=sys.stderr)
        return 3
    ctx_params = llama_cpp.llama_context_default_params()
    ctx_params.n_ctx = 128
    ctx_params.n_batch = PROMPT_TOKENS
    ctx_params.n_ubatch = PROMPT_TOKENS
    ctx = llama_cpp.llama_init_from_model(model, ctx_params)
    if not ctx:
        print("cannot create a context", file=sys.stderr)
        return 3
    simulated = simulated_amx()
    if simulated == "crash-always" or (simulated == "crash" and with_extra_buffers):
        os.kill(os.getpid(), signal.SIGSEGV)  # what a faulting kernel does, here on purpose
    if simulated == "killed" and with_extra_buffers:
        os.kill(os.getpid(), signal.SIGKILL)  # what the OOM killer does: no verdict on the kernels
    vocab_size = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model))
    tokens = [(7919 * i + 13) % vocab_size for i in range(PROMPT_TOKENS)]
    batch = llama_cpp.llama_batch_init(PROMPT_TOKENS, 0, 1)
    try:
        for start, count in [(0, PROMPT_TOKENS)] + [(PROMPT_TOKENS + i, 1) for i in range(SINGLE_STEPS)]:
            batch.n_tokens = count
            for i in range(count):
                batch.token[i] = tokens[(start + i) % PROMPT_TOKENS]
                batch.pos[i] = start + i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = i == count - 1
            if llama_cpp.llama_decode(ctx, batch) != 0:
                print("llama_decode failed", file=sys.stderr)
                return 3
    finally:
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_free(ctx)
        llama_cpp.llama_model_free(model)
    print("ok", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
