"""One colour per configured model, stable across runs (config order)."""

from __future__ import annotations

# Distinct on dark and light themes; readable as text foreground.
PALETTE = (
    "#4fa3ff",  # blue
    "#e5a50a",  # amber
    "#3fb950",  # green
    "#d36ee0",  # magenta
    "#f0605d",  # red
    "#2bc0c8",  # cyan
    "#c08a5a",  # brown
    "#9a9cff",  # lavender
)
UNKNOWN = "#999999"


def model_colours(names: list[str] | tuple[str, ...]) -> dict[str, str]:
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}
