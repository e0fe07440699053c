"""The exact-batch probe's child process (engine/exact_batch_probe.py runs it).

Run as `python -m coolfusion_local.engine.exact_batch_child MODEL.gguf --n-ctx=N ...`:
loads the model as the user's process loaded it and prints "exact N" (or
"exact none"). Where layers live on a GPU device, llama.cpp has crashed in
this measurement (a batched decode after removing a sequence's cells), so it
never runs in the user's process there.
"""

from __future__ import annotations

import os
import signal
import sys

from ..errors import CoolfusionError
from .exact_batch_probe import SIMULATE_CRASH_VARIABLE
from .source_model import SourceModel


def child_main(argv: list[str]) -> int:
    """In the child: load the model as the parent did, probe, print the size."""
    options = dict(arg[2:].split("=", 1) for arg in argv if arg.startswith("--") and "=" in arg)
    paths = [arg for arg in argv if not arg.startswith("--")]
    if len(paths) != 1:
        print("usage: python -m coolfusion_local.engine.exact_batch_child MODEL.gguf --n-ctx=N --n-batch=N --gpu-layers=N --threads=N "
              "--extra-buffers=0|1", file=sys.stderr)
        return 2
    try:
        model = SourceModel(
            "probe", paths[0], n_ctx=int(options.get("n-ctx", 4096)), n_batch=int(options.get("n-batch", 512)),
            n_gpu_layers=int(options.get("gpu-layers", 0)), n_threads=int(options.get("threads", 0)) or None,
            cpu_extra_buffers=options.get("extra-buffers", "0") == "1",
        )
    except CoolfusionError as error:
        print(f"cannot load {paths[0]}: {error}", file=sys.stderr)
        return 3
    if os.environ.get(SIMULATE_CRASH_VARIABLE):
        os.kill(os.getpid(), signal.SIGSEGV)  # what the Vulkan crash did, here on purpose
    try:
        size = model._probe_exact_batch()
    except CoolfusionError as error:
        print(f"the probe failed: {error}", file=sys.stderr)
        return 3
    finally:
        model.close()
    print(f"exact {size if size is not None else 'none'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
