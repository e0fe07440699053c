"""`python -m llama_cpp.server`, with this machine's llama.cpp CPU decision applied.

llama-cpp-python's server has no switch for llama.cpp's extra CPU buffer types
(AMX, weight repacking), and on a CPU whose AMX kernels fault it dies at the
first request (llama.cpp #20824). The remote-member tests start the real server
through this launcher: it asks `coolfusion_local.runtime.extra_buffers` (which
probes in a child process on a CPU with AMX), sets `use_extra_bufts` on every
model llama-cpp-python loads, then runs the server with the same arguments.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    from coolfusion_local.runtime.extra_buffers import LlamaCrashes, check_loadable, decide

    decision = decide(probe_model=Path(argv[argv.index("--model") + 1]))
    try:
        check_loadable(decision)
    except LlamaCrashes as error:
        sys.exit(f"llama_server_launcher: {error}")
    print(f"llama_server_launcher: extra CPU buffer types {decision.describe()}", file=sys.stderr, flush=True)

    import llama_cpp
    import llama_cpp.llama_cpp as bindings

    default_params = bindings.llama_model_default_params

    def params_with_decision():
        params = default_params()
        params.use_extra_bufts = decision.enabled
        return params

    # llama_cpp.llama.Llama calls the bindings' function by module attribute at each load.
    bindings.llama_model_default_params = params_with_decision
    llama_cpp.llama_model_default_params = params_with_decision
    sys.argv = ["llama_cpp.server", *argv]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
