"""Running `coolfusion` the way a user does, in a sealed-off home.

Every run gets its own config, cache and Hugging Face folders under tmp_path,
so no test reads the developer's real models.toml or writes to their cache.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Home:
    root: Path

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def hf_home(self) -> Path:
        return self.root / "hf"

    def env(self, **extra: str) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "HUGGINGFACE"))}
        env.update(
            XDG_CACHE_HOME=str(self.cache),
            XDG_CONFIG_HOME=str(self.config),
            XDG_DATA_HOME=str(self.root / "data"),
            XDG_STATE_HOME=str(self.root / "state"),
            HF_HOME=str(self.hf_home),
            # Should anything try the real Hub, it fails at once instead of reaching the internet.
            HF_ENDPOINT="http://127.0.0.1:9",
            HF_HUB_DISABLE_TELEMETRY="1",
            NO_PROXY="127.0.0.1,localhost",
            PYTHONPATH=str(REPO),
        )
        env.update(extra)
        return env

    def apply(self, monkeypatch) -> None:
        """The same sealing for code run inside the test process (platformdirs reads XDG_* per call)."""
        for key, value in self.env().items():
            if key.startswith("XDG_"):
                monkeypatch.setenv(key, value)


def run_coolfusion(home: Home, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "coolfusion_local", *args],
        cwd=home.root,
        env=home.env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
