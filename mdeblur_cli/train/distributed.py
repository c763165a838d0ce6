"""torchrun / DistributedDataParallel helpers: gloo on CPU, nccl on CUDA; rank 0 alone writes."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def env_info() -> DistInfo:
    """Rank and world size from torchrun's environment (single process without it)."""
    return DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                    int(os.environ.get("LOCAL_RANK", 0)))


def init(device_type: str) -> DistInfo:
    """Join the process group when launched by torchrun."""
    info = env_info()
    if info.enabled and not dist.is_initialized():
        if device_type == "cuda":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return info


def any_flag(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank when any rank raised the flag (e.g. a stop request)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def gather_objects(obj, info: DistInfo) -> list:
    """Every rank's object, in rank order."""
    if not info.enabled:
        return [obj]
    out = [None] * info.world
    dist.all_gather_object(out, obj)
    return out


def shutdown(info: DistInfo) -> None:
    """Leave the process group together: without the barrier a rank that finishes first (rank 0 still drawing
    the training curve) tears gloo down under the other, which can abort it ('terminate called without an
    active exception', exit -6)."""
    if info.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
