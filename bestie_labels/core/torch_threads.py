"""How many torch threads a CPU model runs with."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def threads_for(backbone: str | None, device) -> Iterator[None]:
    """One torch thread for the ``tiny`` backbone on the CPU, the current count otherwise.

    Its small tensors gain little from a second thread and lose several-fold on shared cores;
    and a per-image stage gives the same bytes with one process or ``--workers N`` (joblib gives
    each worker one thread), since float sums depend on the thread count.
    """
    n = torch.get_num_threads()
    if torch.device(device).type == "cpu" and backbone == "tiny":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)
