"""The headroom table at the end of `coolfusion eval` and in `eval diff` (measure/headroom.py does the sums).

Here: which model leads (the engine's own rule over the configured models, or
what a run folder recorded) and which answers count.
"""

from __future__ import annotations

from typing import Sequence

from ..config import Config
from ..engine.lead import Standing, choose_lead
from ..measure.headroom import Capture, Headroom, capture, compute, recorded_lead, solo_columns


def standings(config: Config, names: Sequence[str]) -> list[Standing]:
    """What each model's claim to lead rests on, as `models list` reads it: no loading, no network."""
    from ..models.gguf_info import GgufError, read_gguf_info
    from ..models.hub import model_status

    found = []
    for name in names:
        spec = config.model(name)
        status = model_status(spec)
        info = None
        if status.path is not None:
            try:
                info = read_gguf_info(status.path)
            except GgufError:
                info = None
        size = None if spec.is_remote else (info.file_size if info else status.expected_size)
        found.append(Standing(spec.name, spec.lead, spec.weight, info.parameter_count if info else None, size))
    return found


def engine_lead(config: Config, names: Sequence[str]) -> str:
    """The model the engine makes lead among `names` (engine/lead.py)."""
    return choose_lead(standings(config, names)).name


def for_eval(config: Config, names: Sequence[str], records, problems) -> tuple[Headroom | None, str | None]:
    """The run's headroom, or None and a line saying why there is none (None, None: fewer than two solo modes)."""
    columns = solo_columns(records, [p.index for p in problems])
    if len(columns) < 2:
        return None, None
    lead = engine_lead(config, names)
    if lead not in columns:
        return None, (f"no headroom table: the lead {lead} was not run alone; add solo:{lead} to --modes "
                      "(or `--modes solo,...`)")
    return compute(columns, lead), None


def for_run(run, against: str | None = None) -> tuple[Headroom | None, list[Capture]]:
    """`eval diff`: the headroom of a run folder's solo answers, and what each fused mode captured of it.

    The lead: the one the run recorded, else its first model, else (a run still writing, with no
    results.json yet) the solo mode the diff is against."""
    columns = solo_columns(run.records)
    if len(columns) < 2:
        return None, []
    lead = recorded_lead(run.header)
    source = "recorded"
    if lead is None and run.lead is not None:
        lead, source = run.lead.removeprefix("solo:"), "first listed (the run recorded no lead)"
    if lead is None and against is not None and against.startswith("solo:"):
        lead, source = against.removeprefix("solo:"), "the --against model (the run names none)"
    if lead not in columns:
        return None, []
    headroom = compute(columns, lead, lead_source=source)
    captures = [capture(headroom, mode, {p: r.correct for p, r in run.by_mode(mode).items()}, columns[lead])
                for mode in run.modes if not mode.startswith("solo:")]
    return headroom, captures
