"""models.toml: its typed form (`schema.py`), where it is found and how it is read (`loading.py`),
and the field checks that word every mistake as one line (`checks.py`).

`load_config` here needs the PyPI-carried model names (`offline_models=`);
`coolfusion_local.load_config` is the one that knows them.
"""

from .loading import find_config_file, load_config, parse_config
from .schema import Config, FusionSettings, ModelSpec, RuntimeSettings, effective_gpu_layers

__all__ = [
    "Config",
    "FusionSettings",
    "ModelSpec",
    "RuntimeSettings",
    "effective_gpu_layers",
    "find_config_file",
    "load_config",
    "parse_config",
]
