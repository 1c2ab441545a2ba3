"""Several processes under ``torchrun``: process group, ranks, DistributedDataParallel wrapping."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass
class Dist:
    """The processes of a run (``world`` 1: a single process)."""

    world: int = 1
    rank: int = 0
    local_rank: int = 0
    initialised_here: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def close(self) -> None:
        """Destroy the process group if :func:`init_distributed` created it."""
        if self.initialised_here:
            torch.distributed.destroy_process_group()


def init_distributed(device: str) -> Dist:
    """The process group of a ``torchrun`` launch (``WORLD_SIZE > 1``; NCCL on CUDA, Gloo on the
    CPU), initialised here unless it already is."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    here = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device == "cuda" else "gloo")
        here = True
    return Dist(world=dist.get_world_size(), rank=dist.get_rank(),
                local_rank=int(os.environ.get("LOCAL_RANK", "0")), initialised_here=here)


def wrap_model(model: torch.nn.Module, dist_: Dist, device: torch.device) -> torch.nn.Module:
    """``model`` itself in a single process; else SyncBatchNorm (CUDA) in DistributedDataParallel."""
    if dist_.world <= 1:
        return model
    if device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[dist_.local_rank] if device.type == "cuda" else None)
