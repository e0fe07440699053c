"""The child process of engine/device_probes.py: a measurement of a model with GPU layers.

Run as `python -m coolfusion_local.engine.device_probe_child JOB MODEL.gguf --n-ctx=N ...`:
loads the model as the user's process loaded it, runs JOB and prints its
result on the last line of stdout:

* `exact-batch`: "exact N" (or "exact none"), `SourceModel._probe_exact_batch`;
* `decode-times --sizes=1,2,4 --repeats=6`: a JSON object of seconds by size,
  `SourceModel._decode_times_here`.

Where layers live on a GPU device, llama.cpp has crashed in both (a batched
decode after removing a sequence's cells), so they never run in the user's
process there. Exit code 3: the model could not be loaded or the job failed.
"""

from __future__ import annotations

import json
import os
import signal
import sys

from ..errors import CoolfusionError
from .device_probes import SIMULATE_CRASH_VARIABLE
from .source_model import SourceModel

JOBS = ("exact-batch", "decode-times")
USAGE = (f"usage: python -m coolfusion_local.engine.device_probe_child {{{','.join(JOBS)}}} MODEL.gguf "
         "--n-ctx=N --n-batch=N --gpu-layers=N --threads=N --extra-buffers=0|1 [--sizes=1,2,4 --repeats=N]")


def _run(job: str, model: SourceModel, options: dict[str, str]) -> str:
    if job == "exact-batch":
        size = model._probe_exact_batch()
        return f"exact {size if size is not None else 'none'}"
    sizes = [int(size) for size in options.get("sizes", "1").split(",")]
    return json.dumps(model._decode_times_here(sizes, int(options.get("repeats", "1"))))


def child_main(argv: list[str]) -> int:
    """In the child: load the model as the parent did, run the job, print its result."""
    options = dict(arg[2:].split("=", 1) for arg in argv if arg.startswith("--") and "=" in arg)
    words = [arg for arg in argv if not arg.startswith("--")]
    if len(words) != 2 or words[0] not in JOBS:
        print(USAGE, file=sys.stderr)
        return 2
    job, path = words
    try:
        model = SourceModel(
            "probe", path, n_ctx=int(options.get("n-ctx", 4096)), n_batch=int(options.get("n-batch", 512)),
            n_gpu_layers=int(options.get("gpu-layers", 0)), n_threads=int(options.get("threads", 0)) or None,
            cpu_extra_buffers=options.get("extra-buffers", "0") == "1",
        )
    except CoolfusionError as error:
        print(f"cannot load {path}: {error}", file=sys.stderr)
        return 3
    simulated = os.environ.get(SIMULATE_CRASH_VARIABLE)
    if simulated:  # tests: "1" is what the Vulkan crash did (SIGSEGV), or a signal's name
        os.kill(os.getpid(), getattr(signal, simulated, signal.SIGSEGV))
    try:
        result = _run(job, model, options)
    except (CoolfusionError, ValueError) as error:
        print(f"{job} failed: {error}", file=sys.stderr)
        return 3
    finally:
        model.close()
    print(result, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
