"""Which `model` names the API serves, and the engine mode each one means.

`coolfusion` is the fused model in models.toml's default mode;
`coolfusion:cool`, `coolfusion:adaptive`, `coolfusion:cool+r` pick a mode;
a source model's own name is that model alone. A model that failed to load
is listed under `missing` with its reason, and asking for it is a 503.
"""

from __future__ import annotations

import time

from ..engine.modes import FUSION_MODES, SOLO_PREFIX
from ..fusion_engine import FusionEngine
from .errors import ApiError

FUSED = "coolfusion"
OWNER = "coolfusion-local"


class Catalog:
    def __init__(self, engine: FusionEngine):
        self.engine = engine
        self.created = int(time.time())

    def _source_names(self, state: str) -> list[str]:
        return [name for name in self.engine.model_names if self.engine.status(name).state == state]

    def _fused_members(self) -> list[str]:
        return self._source_names("loaded")

    def listing(self) -> dict:
        members = self._fused_members()
        fused = [(FUSED, self.engine.mode)] + [(f"{FUSED}:{mode}", mode) for mode in FUSION_MODES]
        data = [self._entry(name, mode, members) for name, mode in fused]
        data += [self._entry(name, f"{SOLO_PREFIX}{name}", [name]) for name in self._answering_alone()]
        missing = [{"id": name, "reason": self.engine.status(name).reason} for name in self._source_names("failed")]
        return {"object": "list", "data": data, "missing": missing}

    def _answering_alone(self) -> list[str]:
        """Loaded source models: the fused ones, and one loaded only for a solo default mode."""
        return [name for name in self.engine.model_names
                if self.engine.status(name).info is not None and self.engine.status(name).state != "failed"]

    def _entry(self, name: str, mode: str, members: list[str]) -> dict:
        return {"id": name, "object": "model", "created": self.created, "owned_by": OWNER,
                "coolfusion": {"mode": mode, "members": members}}

    def mode_for(self, model: str) -> str:
        """The engine mode a request's `model` names; ApiError when it names nothing served."""
        if model == FUSED:
            return self.engine.mode
        if model.startswith(f"{FUSED}:") and model[len(FUSED) + 1:] in FUSION_MODES:
            return model[len(FUSED) + 1:]
        if model in self._answering_alone():
            return f"{SOLO_PREFIX}{model}"
        if model in self.engine.model_names and self.engine.status(model).state == "failed":
            raise ApiError(503, f"model {model!r} failed to load: {self.engine.status(model).reason}",
                           type="server_error", code="model_unavailable", param="model")
        served = ", ".join(entry["id"] for entry in self.listing()["data"])
        raise ApiError(404, f"the model {model!r} does not exist; this server has: {served}",
                       code="model_not_found", param="model")
