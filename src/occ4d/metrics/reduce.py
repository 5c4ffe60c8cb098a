"""Cross-process reduction for metric accumulators, degrading to a no-op in one process.

Every accumulator keeps integer (or float64) counters on the device of its inputs; ``compute()``
sums them across processes here. Nothing is padded or duplicated: each sample must reach exactly
one rank (``occ4d.data.sampler.ExactDistributedSampler``), so the reduced counters equal the
single-process ones bit for bit.
"""

from __future__ import annotations

import torch


def is_distributed() -> bool:
    """True when torch.distributed is initialised with more than one process."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _comm_device(t: torch.Tensor) -> torch.device:
    # NCCL reduces CUDA tensors only; gloo reduces CPU tensors only.
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over all processes (returns a new tensor on ``t``'s device; ``t`` is untouched)."""
    if not is_distributed():
        return t.clone()
    import torch.distributed as dist

    buf = t.detach().to(_comm_device(t), copy=True)
    dist.all_reduce(buf, op=dist.ReduceOp.SUM)
    return buf.to(t.device)


def all_gather_cat(t: torch.Tensor) -> torch.Tensor:
    """Concatenate along dim 0 the tensors of every process, in rank order; sizes may differ."""
    if not is_distributed():
        return t.clone()
    import torch.distributed as dist

    world = dist.get_world_size()
    dev = _comm_device(t)
    n = torch.tensor([t.shape[0]], dtype=torch.int64, device=dev)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    sizes_i = [int(s.item()) for s in sizes]
    biggest = max(sizes_i)
    padded = torch.zeros((biggest, *t.shape[1:]), dtype=t.dtype, device=dev)
    padded[: t.shape[0]] = t.to(dev)
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[:s] for p, s in zip(parts, sizes_i, strict=True)]).to(t.device)
