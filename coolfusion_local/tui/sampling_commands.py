"""Command-palette entries that change how the chat samples; the status bar shows the result."""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable

from textual.app import SystemCommand

from .plain_text import escaped

TEMPERATURES = (0.3, 0.8, 1.2)


def sampling_commands(app, chat) -> Iterable[SystemCommand]:
    configured, current = app.configured_sampling, app.sampling
    yield SystemCommand(
        "Sampling: as configured",
        escaped(f"models.toml's [fusion] values: {configured.summary()}"),
        lambda: app.set_sampling(configured, "as configured"),
    )
    yield SystemCommand(
        "Sampling: greedy", "Temperature 0: always the likeliest token, the same answer every time",
        lambda: app.set_sampling(replace(current, temperature=0.0), "greedy"),
    )
    for temperature in TEMPERATURES:
        yield SystemCommand(
            escaped(f"Sampling: temperature {temperature:g}"),
            "Lower is more focused, higher more varied",
            lambda t=temperature: app.set_sampling(replace(current, temperature=t), f"temperature {t:g}"),
        )
    # The entry switches the penalty off, or back on (to the configured one, else Ollama's 1.1).
    penalty = 1.0 if current.repeat_penalty != 1.0 else (
        configured.repeat_penalty if configured.repeat_penalty != 1.0 else 1.1
    )
    yield SystemCommand(
        escaped("Sampling: repeat penalty " + ("off" if penalty == 1.0 else f"{penalty:g}")),
        escaped(f"Penalise tokens of the last {current.repeat_last_n} (now {current.repeat_penalty:g})"),
        lambda: app.set_sampling(replace(current, repeat_penalty=penalty), f"repeat penalty {penalty:g}"),
    )
    last = chat.session.last_answer()
    seed = ((last.stats or {}).get("sampling") or {}).get("seed") if last is not None else None
    if seed is not None and current.seed != seed:
        yield SystemCommand(
            "Sampling: keep the last answer's seed",
            escaped(f"Seed {seed}: asking the same again gives the same answer"),
            lambda: app.set_sampling(replace(current, seed=seed), f"seed {seed}"),
        )
    if current.seed is not None:
        yield SystemCommand(
            "Sampling: a new seed for every answer", escaped(f"Forget seed {current.seed}"),
            lambda: app.set_sampling(replace(current, seed=None), "a new seed for every answer"),
        )
