"""Each local member's n_gpu_layers: models.toml's where set, else the device fit's.

One planner per engine (and per `models check`): the first load plans every
configured local member at once (models/device_fit.py), lead first, so the
loading order does not decide who gets the GPU. A member the plan did not
know (not on disk then, enabled later) is fitted into what the others left.

Precedence: `n_gpu_layers` in models.toml (-1 all, 0 CPU, N) > the fit within
COOLFUSION_GPU_MEMORY > the fit within the device's free memory. A llama.cpp
build without a GPU backend, or a machine without a device, runs on the CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..engine.lead import Standing, choose_lead
from ..runtime.devices import offload_devices
from .device_fit import OffloadPlan, Placement, plan
from .gguf_info import GgufError, read_gguf_info
from .hub import model_status


class OffloadPlanner:
    def __init__(self, specs: Sequence):
        self._specs = [spec for spec in specs if not spec.is_remote]
        self._plan: OffloadPlan | None = None
        self._paths: dict[str, Path] = {}
        self.reported = False  # the plan's line was handed to a caller

    def layers_for(self, spec, path: Path) -> int:
        """The n_gpu_layers to load `spec` with (models.toml's value where it sets one)."""
        self._paths[spec.name] = Path(path)
        if spec.n_gpu_layers is not None:
            return spec.n_gpu_layers
        current = self.plan(spec)
        if current.device is None:
            return 0
        placed = current.placements.get(spec.name)
        return placed.layers if placed is not None else 0

    def plan(self, also=None) -> OffloadPlan:
        """The plan, made at the first call; `also`: a member to fit in if the plan lacks it."""

        if self._plan is None:
            devices = offload_devices()
            if not devices:  # a CPU build or machine: nothing to read or weigh
                self._plan = OffloadPlan(None)
                return self._plan
            specs = list(self._specs)
            if also is not None and all(spec.name != also.name for spec in specs):
                specs.append(also)
            self._plan = plan([self._entry(spec) for spec in specs], self._lead(specs), devices)
        elif also is not None and self._plan.device and also.name not in self._plan.placements:
            self._fit_late(also)
        return self._plan

    def take_summary(self) -> str | None:
        """The plan's one line, the first time it is asked for (a load's notice)."""
        if self.reported or self._plan is None or self._plan.device is None:
            return None  # on the CPU there is nothing to tell
        self.reported = True
        return self._plan.summary()

    # ------------------------------------------------------------------

    def _entry(self, spec) -> tuple[str, Path | None, int, int | None]:
        return spec.name, self._path(spec), spec.n_ctx, spec.n_gpu_layers

    def _path(self, spec) -> Path | None:
        if spec.name in self._paths:
            return self._paths[spec.name]

        try:
            return model_status(spec).path
        except Exception:  # a member that cannot be found is the loader's to report
            return None

    def _lead(self, specs) -> str | None:

        standings = []
        for spec in specs:
            path = self._path(spec)
            try:
                info = read_gguf_info(path) if path is not None else None
            except (GgufError, OSError):
                info = None
            standings.append(Standing(spec.name, spec.lead, spec.weight,
                                      info.parameter_count if info else None, info.file_size if info else None))
        return choose_lead(standings).name if standings else None

    def _fit_late(self, spec) -> None:
        """Fit one more member into what the planned ones leave."""

        placed = self._plan.placements
        entries = [(name, self._paths.get(name) or self._path_by_name(name), self._n_ctx(name), p.layers)
                   for name, p in placed.items()]
        entries.append(self._entry(spec))
        lead = next(iter(placed), spec.name)
        refit = plan(entries, lead, offload_devices())
        if spec.name in refit.placements:
            placed[spec.name] = refit.placements[spec.name]
        else:
            placed[spec.name] = Placement(0, 0, 0)

    def _path_by_name(self, name: str) -> Path | None:
        spec = next((spec for spec in self._specs if spec.name == name), None)
        return self._path(spec) if spec is not None else None

    def _n_ctx(self, name: str) -> int:
        spec = next((spec for spec in self._specs if spec.name == name), None)
        return spec.n_ctx if spec is not None else 4096
