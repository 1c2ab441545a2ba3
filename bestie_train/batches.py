"""Batches for the training loop: resumable ``(epoch, index)`` keys and their collation.

:class:`EpochBatches` yields batches of ``(epoch, index)`` keys: a per-epoch permutation seeded
with ``(seed, epoch)``, sharded across DistributedDataParallel ranks, and able to start at any
iteration, which is what makes ``fit --resume`` continue exactly. :func:`collate` stacks the
samples of :class:`bestie_train.data.TrainData`.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch

from bestie_labels.core.errors import BestieError


def collate(samples: Sequence[dict]) -> dict:
    """Stack samples into a batch; ``points`` / ``point_classes`` are padded to the longest.

    Returns the keys of :class:`TrainData` with a leading batch dimension ``B``; ``points`` is
    ``(B, P, 2) float32`` and ``point_classes`` ``(B, P) int64`` with ``-1`` for padding
    (``P >= 1``); ``index`` is ``(B,) int64``.
    """
    out = {}
    for k in ("image", "semantic", "center", "offset", "weight", "wsss", "components", "labels"):
        out[k] = torch.stack([s[k] for s in samples])
    p = max(1, max(int(s["points"].shape[0]) for s in samples))
    pts = torch.zeros((len(samples), p, 2), dtype=torch.float32)
    pcl = torch.full((len(samples), p), -1, dtype=torch.int64)
    for b, s in enumerate(samples):
        n = s["points"].shape[0]
        pts[b, :n] = s["points"]
        pcl[b, :n] = s["point_classes"]
    out["points"], out["point_classes"] = pts, pcl
    out["index"] = torch.tensor([s["index"] for s in samples], dtype=torch.int64)
    return out


class EpochBatches(torch.utils.data.Sampler):
    """Endless, resumable batches of ``(epoch, index)`` keys for :class:`TrainData`.

    Epoch ``e`` visits ``randperm(n)`` drawn from a generator seeded with ``(seed, e)``; rank
    ``r`` of ``world`` takes every ``world``-th index from ``r``, and the last incomplete batch of
    an epoch is dropped, so every rank runs ``steps_per_epoch`` steps per epoch. Iteration ``i``
    (0-based) is always the same batch, whichever iteration the sampler started at.

    Args:
        n: dataset size.
        batch_size: samples per batch on this rank.
        seed: base seed.
        rank, world: this process's rank and the number of processes.
        start: the first iteration to yield.
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0, rank: int = 0, world: int = 1, start: int = 0):
        if n // world < batch_size:
            raise BestieError(f"the training split has {n} images: too few for batch size {batch_size}"
                              + (f" on each of {world} processes" if world > 1 else ""))
        self.n, self.batch_size, self.seed = n, batch_size, int(seed)
        self.rank, self.world, self.start = rank, world, int(start)

    @property
    def steps_per_epoch(self) -> int:
        return (self.n // self.world) // self.batch_size

    def epoch_order(self, epoch: int) -> list[int]:
        """Indices this rank visits in ``epoch``, in order."""
        g = torch.Generator()
        g.manual_seed(int(np.random.SeedSequence([self.seed & 0xFFFFFFFF, int(epoch)]).generate_state(1)[0]))
        perm = torch.randperm(self.n, generator=g).tolist()
        return perm[self.rank::self.world][: (self.n // self.world)]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        it = self.start
        spe = self.steps_per_epoch
        cached: tuple[int, list[int]] | None = None
        while True:
            epoch, pos = divmod(it, spe)
            if cached is None or cached[0] != epoch:
                cached = (epoch, self.epoch_order(epoch))
            order = cached[1]
            yield [(epoch, i) for i in order[pos * self.batch_size:(pos + 1) * self.batch_size]]
            it += 1
