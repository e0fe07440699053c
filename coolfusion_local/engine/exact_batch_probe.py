"""The exact-batch probe of a model with layers on a GPU device, run in a child process.

On llama.cpp's Vulkan backend the first answer without a cached exact batch
size died of SIGSEGV (3 runs in 5) inside the probe's batched decode on the
spare sequence (issue 28). A native crash at the first answer is what the
"probe in a child" rule is for: where any layer is offloaded, the
measurement runs in `probe_child` (the AMX probe's child) with the model
loaded as this process loads it, and only its verdict comes back:

* "exact N": N is used and kept in the cache folder (exact_batch_cache);
* the child died of a signal: 1 is used and kept (drafting checks one
  token per decode: always exact, only slower), and the user reads why;
* the child could not run (no memory on the device for a second copy, a
  timeout): 1 for this process only; the next start probes again.

On the CPU the probe stays in-process: it has never crashed there and costs
about a second, where a child would load the model again.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass

from ..runtime.child_exit import crash_name, describe

PROBE_TIMEOUT_S = 300.0  # a software GPU (lavapipe) spends ~20 s building pipelines and ~1 s a token
SIMULATE_CRASH_VARIABLE = "COOLFUSION_SIMULATE_EXACT_BATCH_CRASH"  # tests: the child dies of SIGSEGV


@dataclass(frozen=True)
class ProbeVerdict:
    size: int | None  # None: the context is too small to probe (1 is then the safe size)
    keep: bool  # may be kept in the cache folder
    note: str | None = None  # what the user reads, where the probe did not give a size


def probe_in_child(model) -> ProbeVerdict:
    """Measure `model`'s (a loaded SourceModel) exact batch size in a child loaded alike."""
    started = time.perf_counter()
    command = [
        sys.executable, "-m", "coolfusion_local.engine.exact_batch_child", str(model.path),
        f"--n-ctx={model.n_ctx}", f"--n-batch={model.n_batch}", f"--gpu-layers={model.n_gpu_layers}",
        f"--threads={model.n_threads}", f"--extra-buffers={int(model.cpu_extra_buffers)}",
    ]
    try:
        child = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return ProbeVerdict(1, False, f"the exact-batch probe of {model.name} did not finish in "
                                      f"{PROBE_TIMEOUT_S:.0f} s: drafting checks one token per decode this time")
    except OSError as error:
        return ProbeVerdict(1, False, f"the exact-batch probe of {model.name} could not start ({error})")
    crash = crash_name(child.returncode)  # a Windows exception code is a crash too, as for the AMX probe
    if child.returncode < 0 or crash:
        name = crash or describe(child.returncode)
        return ProbeVerdict(1, True, f"llama.cpp crashed ({name}) measuring {model.name}'s exact batch size on "
                                     f"{model.device or 'the GPU'} in a test process after "
                                     f"{time.perf_counter() - started:.0f} s; drafting checks one token per "
                                     "decode with it on this machine (see docs/models.md#gpu-offload)")
    words = child.stdout.decode("utf-8", "replace").split()
    if child.returncode == 0 and len(words) >= 2 and words[-2] == "exact":
        return ProbeVerdict(None if words[-1] == "none" else int(words[-1]), True)
    last = (child.stderr or child.stdout).decode("utf-8", "replace").strip().splitlines()
    why = last[-1][:200] if last else f"exit code {child.returncode}"
    return ProbeVerdict(1, False, f"the exact-batch probe of {model.name} could not run ({why}); drafting checks "
                                  "one token per decode this time")
