"""Where coolfusion-local keeps its files on this machine.

Per-platform user directories (platformdirs), so the same code puts the
config under ~/.config on Linux, ~/Library/Application Support on macOS and
%APPDATA% on Windows. On Linux the XDG_* variables move them, which is how the
tests keep a user's real config and cache out of reach.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "coolfusion-local"
CONFIG_FILE_NAME = "models.toml"


def config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME))


def cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir(APP_NAME))


def data_dir() -> Path:
    """Durable user data (conversation history); `$COOLFUSION_DATA_DIR` moves it."""
    override = os.environ.get("COOLFUSION_DATA_DIR")
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def log_dir() -> Path:
    return Path(platformdirs.user_log_dir(APP_NAME))


def models_cache_dir() -> Path:
    """Assembled offline models; safe to delete, they are rebuilt on the next start."""
    return cache_dir() / "models"


def verification_dir() -> Path:
    """Stamps recording which model files were already hashed and found intact."""
    return cache_dir() / "verified"


def user_config_file() -> Path:
    return config_dir() / CONFIG_FILE_NAME


def default_config_file() -> Path:
    """The default models.toml shipped inside the package (read when the user has none).

    A copy of the models.toml at the root of the repository, so a wheel installed
    anywhere (pipx, uv tool, a venv) has it; tests/test_install.py keeps the two equal.
    """
    return Path(__file__).resolve().parent / CONFIG_FILE_NAME
