"""Two modes graded on the same problems: the paired counts and a bootstrap interval of their difference.

The two columns are paired (same problems), so the interval resamples
problems, not answers: each resample draws n problem indices with
replacement and takes the difference in accuracy over them. A fixed seed
makes the interval repeatable to the last digit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

DEFAULT_RESAMPLES = 10_000
DEFAULT_SEED = 0
MAX_RESAMPLES = 1_000_000  # 8 MB of differences; far past where the interval's last digit settles
MAX_SEED = 2**32 - 1  # numpy takes any non-negative int; a bound keeps the option's range stated
CONFIDENCE = 95.0
_CHUNK = 1_000  # resamples drawn at once: bounds memory on large runs


@dataclass(frozen=True)
class PairedCounts:
    """Correctness of a mode and a baseline on the same n problems."""

    n: int
    both_right: int
    both_wrong: int
    mode_only: int  # the mode right, the baseline wrong
    baseline_only: int  # the baseline right, the mode wrong

    @property
    def difference(self) -> float:
        """Mode accuracy minus baseline accuracy, in percentage points."""
        return 100.0 * (self.mode_only - self.baseline_only) / self.n if self.n else 0.0


def paired_counts(mode: Sequence[bool], baseline: Sequence[bool]) -> PairedCounts:
    if len(mode) != len(baseline):
        raise ValueError("paired columns must have the same length")
    pairs = list(zip(map(bool, mode), map(bool, baseline)))
    return PairedCounts(
        n=len(pairs),
        both_right=pairs.count((True, True)),
        both_wrong=pairs.count((False, False)),
        mode_only=pairs.count((True, False)),
        baseline_only=pairs.count((False, True)),
    )


def bootstrap_interval(mode: Sequence[bool], baseline: Sequence[bool], resamples: int = DEFAULT_RESAMPLES,
                       seed: int = DEFAULT_SEED) -> tuple[float, float] | None:
    """The 95% percentile interval of (mode - baseline) accuracy, in points; None for no problems.

    numpy's default_rng(seed) draws the problem indices, `resamples` rows of n,
    in chunks of 1,000 rows; the bounds are np.percentile (linear) at 2.5 and 97.5.
    """
    if len(mode) != len(baseline):
        raise ValueError("paired columns must have the same length")
    if not 1 <= resamples <= MAX_RESAMPLES:
        raise ValueError(f"resamples must be between 1 and {MAX_RESAMPLES}")
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be between 0 and {MAX_SEED}")
    n = len(mode)
    if n == 0:
        return None
    per_problem = np.asarray(mode, dtype=float) - np.asarray(baseline, dtype=float)
    rng = np.random.default_rng(seed)
    differences = np.empty(resamples)
    for start in range(0, resamples, _CHUNK):
        rows = min(_CHUNK, resamples - start)
        picks = rng.integers(0, n, size=(rows, n))
        differences[start:start + rows] = per_problem[picks].mean(axis=1)
    tail = (100.0 - CONFIDENCE) / 2
    low, high = np.percentile(differences, [tail, 100.0 - tail])
    return 100.0 * float(low), 100.0 * float(high)
