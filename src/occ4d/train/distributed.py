"""Process-group helpers that degrade to one process (after EDM2's ``torch_utils/distributed.py``).

Under ``torchrun`` the environment carries RANK / WORLD_SIZE / LOCAL_RANK and :func:`init`
starts a process group: NCCL when CUDA is present, gloo on CPU. Without it every helper behaves
as the single process it is, so the same command runs on a laptop and on many GPUs.
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist


def init(device: str = "auto") -> torch.device:
    """Start the process group if launched by torchrun; return this process's device."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend, timeout=timedelta(minutes=30))
    return torch.device(device)


def shutdown() -> None:
    """Leave the process group together: a gloo peer that exits while another is still working
    (rank 0 scoring the final evaluation alone) makes that one abort in its destructor."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum over processes, in place; returns ``t`` (a no-op alone)."""
    if is_distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def mean_over_processes(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Average scalar logs over processes (every process must pass the same keys)."""
    if not is_distributed() or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    all_reduce_sum(t)
    return {k: float(v) / world_size() for k, v in zip(keys, t.tolist(), strict=True)}


def broadcast_object(obj):
    """Rank 0's Python object on every process."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def print0(*args, **kwargs) -> None:
    if is_main():
        print(*args, **kwargs, flush=True)
