"""Measurements of a model with layers on a GPU device, run in a child process.

On llama.cpp's Vulkan backend a batched decode after removing some of a
sequence's cells has died of SIGSEGV (issue 28): first in the exact-batch
probe at the first answer (3 runs in 5), then in `bench --decode-costs`
(every run). gdb put the fault in a worker thread of the driver itself
(Mesa 22.3's lavapipe, libvulkan_lvp.so), running ggml-vulkan's fused graphs;
`GGML_VK_DISABLE_FUSION=1` or Mesa 25 avoids it. A driver this product does
not ship can fault like that on any machine, so where any layer is
offloaded both measurements run in `device_probe_child` with the model
loaded as this process loads it, and only their results come back:

* the exact batch size (`probe_in_child`): "exact N" is used and kept in the
  cache folder; a child that crashed (runtime/child_exit: SIGSEGV and kin)
  gives 1, kept (drafting checks one token per decode: always exact, only
  slower), and the user reads why; a child that could not run (no memory on
  the device for a second copy, a timeout, a SIGKILL from the OOM killer)
  gives 1 for this process only, and the next start probes again;
* decode times by batch size (`time_decodes_in_child`, for
  `bench --decode-costs`): the times, or a one-line `DeviceProbeFailed`.

On the CPU both stay in-process: they have never crashed there and cost a
second or two, where a child would load the model again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Sequence

from ..errors import CoolfusionError
from ..runtime.child_exit import NotRun, crash_name, describe, run_probe_child

PROBE_TIMEOUT_S = 300.0  # a software GPU (lavapipe) spends ~20 s building pipelines and ~1 s a token
DECODE_TIMES_TIMEOUT_S = 1800.0  # 6 sizes x 7 decodes; lavapipe's first decode of each size takes seconds
SIMULATE_CRASH_VARIABLE = "COOLFUSION_SIMULATE_DEVICE_CRASH"  # tests: the child dies of SIGSEGV ("1") or the named signal
DOCS = "docs/models.md#gpu-offload"


@dataclass(frozen=True)
class ProbeVerdict:
    size: int | None  # None: the context is too small to probe (1 is then the safe size)
    keep: bool  # may be kept in the cache folder
    note: str | None = None  # what the user reads, where the probe did not give a size


class DeviceProbeFailed(CoolfusionError):
    """A measurement's child crashed or could not run; the message is one line for the user."""


@dataclass(frozen=True)
class _ChildEnd:
    stdout: str = ""
    crash: str | None = None  # how native code ended it ("SIGSEGV"), where it crashed
    failure: str | None = None  # why it gave no answer otherwise (a timeout, an error line)


def _run_child(model, job: str, extra: Sequence[str], timeout: float) -> _ChildEnd:
    """Run `job` in a child that loads `model` (a loaded SourceModel) as this process did."""
    child = run_probe_child("coolfusion_local.engine.device_probe_child", [
        job, str(model.path), f"--n-ctx={model.n_ctx}", f"--n-batch={model.n_batch}",
        f"--gpu-layers={model.n_gpu_layers}", f"--threads={model.n_threads}",
        f"--extra-buffers={int(model.cpu_extra_buffers)}", *extra,
    ], timeout)
    if isinstance(child, NotRun):
        return _ChildEnd(failure=f"it {child.why}")
    crash = crash_name(child.returncode)  # a Windows exception code is a crash too, as for the AMX probe
    if crash:
        return _ChildEnd(crash=crash)
    if child.returncode < 0:  # SIGKILL (the OOM killer), SIGTERM: says nothing of the kernels
        return _ChildEnd(failure=describe(child.returncode))
    stdout = child.stdout.decode("utf-8", "replace")
    if child.returncode == 0:
        return _ChildEnd(stdout=stdout)
    last = (child.stderr or child.stdout).decode("utf-8", "replace").strip().splitlines()
    return _ChildEnd(failure=last[-1][:200] if last else f"exit code {child.returncode}")


def _where(model) -> str:
    return model.device or "the GPU"


def _see_also(device: str | None) -> str:
    """Where to read more; on Vulkan, also the switch that avoided the one driver fault seen so far."""
    if device and device.startswith("Vulkan"):
        return f"see {DOCS}; GGML_VK_DISABLE_FUSION=1 avoided a Vulkan driver's crash like this"
    return f"see {DOCS}"


def probe_in_child(model) -> ProbeVerdict:
    """Measure `model`'s exact batch size in a child loaded alike."""
    started = time.perf_counter()
    end = _run_child(model, "exact-batch", (), PROBE_TIMEOUT_S)
    if end.crash:
        return ProbeVerdict(1, True, f"llama.cpp crashed ({end.crash}) measuring {model.name}'s exact batch size on "
                                     f"{_where(model)} in a test process after "
                                     f"{time.perf_counter() - started:.0f} s; drafting checks one token per "
                                     f"decode with it on this machine ({_see_also(model.device)})")
    words = end.stdout.split()
    if not end.failure and len(words) >= 2 and words[-2] == "exact":
        return ProbeVerdict(None if words[-1] == "none" else int(words[-1]), True)
    why = end.failure or "it printed no size"
    return ProbeVerdict(1, False, f"the exact-batch probe of {model.name} could not run ({why}); drafting checks "
                                  "one token per decode this time")


def time_decodes_in_child(model, sizes: Sequence[int], repeats: int) -> dict[int, list[float]]:
    """Seconds of `repeats` decodes of each size (after one warm-up decode of the largest), as
    `SourceModel.time_decodes` gives them, measured in a child loaded alike."""
    end = _run_child(model, "decode-times", (f"--sizes={','.join(map(str, sizes))}", f"--repeats={repeats}"),
                     DECODE_TIMES_TIMEOUT_S)
    if end.crash:
        raise DeviceProbeFailed(f"llama.cpp crashed ({end.crash}) timing {model.name}'s decodes on {_where(model)} "
                                f"in a test process (this command goes on; {_see_also(model.device)})")
    if not end.failure:
        try:
            times = json.loads(end.stdout.strip().splitlines()[-1])
            return {int(size): [float(t) for t in seconds] for size, seconds in times.items()}
        except (ValueError, IndexError, AttributeError, TypeError):
            pass
    why = end.failure or "it printed no times"
    raise DeviceProbeFailed(f"timing {model.name}'s decodes on {_where(model)} could not run ({why})")
