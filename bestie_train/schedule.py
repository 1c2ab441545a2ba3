"""The learning-rate schedule (linear warm-up, then poly) and the per-iteration seed of ``fit``."""

from __future__ import annotations

import numpy as np

WARMUP_FACTOR = 0.001  # the learning rate starts at lr * 0.001 and rises linearly (official)
POLY_POWER = 0.9


def lr_factor(it: int, iters: int, warmup: int) -> float:
    """Learning-rate multiplier at iteration ``it`` (0-based): linear warm-up from
    :data:`WARMUP_FACTOR` over ``warmup`` iterations, times ``(1 - it / iters) ** 0.9``."""
    w = 1.0
    if it < warmup:
        a = it / warmup
        w = WARMUP_FACTOR * (1 - a) + a
    return w * max(0.0, 1.0 - it / iters) ** POLY_POWER


def iteration_seed(seed: int, it: int, rank: int) -> int:
    """The seed of the global torch RNG (dropout) at iteration ``it`` of process ``rank``: a run
    resumed at ``it`` draws what the uninterrupted one drew."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(it), int(rank), 7]).generate_state(1)[0])
