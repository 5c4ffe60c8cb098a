"""Samplers: exact sharding for evaluation, and a seeded, resumable shuffle for training.

PyTorch's DistributedSampler pads the index list with repeats up to a multiple of the world size,
so multi-GPU evaluation double-counts some samples (OccWorld's 4219 windows on 8 GPUs score 5
twice; PROTOCOLS §3.9). :class:`ExactDistributedSampler` hands every index to exactly one rank
and never pads; ranks may get different counts, which the metric accumulators reduce by summing.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch


def _process_group(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """Explicit values, else the initialised torch.distributed group, else a single process."""
    dist = torch.distributed
    live = dist.is_available() and dist.is_initialized()
    if rank is None:
        rank = dist.get_rank() if live else 0
    if world_size is None:
        world_size = dist.get_world_size() if live else 1
    return rank, world_size


class ExactDistributedSampler(torch.utils.data.Sampler[int]):
    """Indices ``rank, rank + world_size, ...`` of ``range(n)``, in order: a partition of ``range(n)``.

    ``rank`` / ``world_size`` default to the initialised process group (0 / 1 without one).
    """

    def __init__(self, n: int, rank: int | None = None, world_size: int | None = None):
        rank, world_size = _process_group(rank, world_size)
        if n < 0 or world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need n >= 0, world_size >= 1 and 0 <= rank < world_size; "
                             f"got {n}, {rank}, {world_size}")
        self.n, self.rank, self.world_size = n, rank, world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.n, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world_size))


class ShuffleSampler(torch.utils.data.Sampler[int]):
    """A training order that depends only on (seed, epoch), sharded over ranks, resumable.

    Each epoch is one permutation of ``range(n)`` drawn from a generator seeded with
    (seed, epoch), never from global state. With several ranks the permutation is cut to a
    multiple of ``world_size`` (so every rank runs the same number of steps; at most
    ``world_size - 1`` samples sit out an epoch, different ones each epoch) and rank r takes
    positions r, r + world_size, ... ``set_epoch(epoch, skip=k)`` starts this rank's order at its
    k-th sample, so a run resumed after k samples continues exactly where it stopped.
    """

    def __init__(self, n: int, seed: int, rank: int | None = None, world_size: int | None = None):
        rank, world_size = _process_group(rank, world_size)
        if n < 0 or world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need n >= 0, world_size >= 1 and 0 <= rank < world_size; "
                             f"got {n}, {rank}, {world_size}")
        self.n, self.seed, self.rank, self.world_size = n, int(seed), rank, world_size
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        if epoch < 0 or skip < 0:
            raise ValueError(f"epoch and skip must be >= 0, got {epoch}, {skip}")
        self.epoch, self.skip = int(epoch), int(skip)

    def order(self, epoch: int | None = None) -> np.ndarray:
        """This rank's full order for ``epoch`` (default: the current one), before skipping."""
        epoch = self.epoch if epoch is None else epoch
        perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        usable = self.n - self.n % self.world_size if self.world_size > 1 else self.n
        return perm[:usable][self.rank::self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.order()[self.skip:].tolist())

    def __len__(self) -> int:
        return max(self.n // self.world_size - self.skip, 0)
