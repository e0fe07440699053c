"""Sampling flags shared by `generate` and `eval`: --temperature --top-k --top-p --min-p
--repeat-penalty --repeat-last-n --seed, laid over a base `Sampling`."""

from __future__ import annotations

import argparse
from dataclasses import replace

from ..engine.sampling import Sampling
from ..errors import CoolfusionError

_FLAGS = (
    ("--temperature", float, "temperature", "0 = greedy"),
    ("--top-k", int, "top_k", "keep the K likeliest tokens (0 = off)"),
    ("--top-p", float, "top_p", "nucleus: keep tokens up to this probability mass (1 = off)"),
    ("--min-p", float, "min_p", "drop tokens below this share of the likeliest one (0 = off)"),
    ("--repeat-penalty", float, "repeat_penalty", "penalise tokens of the last --repeat-last-n (1 = off)"),
    ("--repeat-last-n", int, "repeat_last_n", "how many answer tokens the penalty looks back"),
    ("--seed", int, "seed", "make a sampled answer reproducible"),
)


def add_sampling_arguments(parser: argparse.ArgumentParser, base_text: str, *, only: tuple[str, ...] = ()) -> None:
    """The flags (or `only` these, by field name); each one left out keeps `base_text`'s value."""
    group = parser.add_argument_group("sampling", f"each source model samples its own proposals; unset: {base_text}")
    for flag, kind, field, help_text in _FLAGS:
        if not only or field in only:
            group.add_argument(flag, type=kind, dest=field, default=None, metavar="X", help=help_text)


def sampling_from_args(args: argparse.Namespace, base: Sampling) -> Sampling:
    """`base` with every flag the user gave; a value out of range is one line, exit 2."""
    given = {field: getattr(args, field) for _, _, field, _ in _FLAGS if getattr(args, field, None) is not None}
    sampling = replace(base, **given)
    problem = sampling.problem()
    if problem is not None:
        raise CoolfusionError(f"--{problem.replace('_', '-')}", exit_code=2)
    return sampling
