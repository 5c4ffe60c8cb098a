"""Samplers: exact partitions for evaluation; seeded, sharded, resumable shuffles for training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from occ4d.data.sampler import ExactDistributedSampler, ShuffleSampler


@pytest.mark.parametrize("n", [0, 1, 4, 7, 150, 4219])
@pytest.mark.parametrize("world_size", [1, 2, 3, 4, 5])
def test_exact_sampler_partitions(n, world_size):
    shards = [list(ExactDistributedSampler(n, r, world_size)) for r in range(world_size)]
    flat = [i for s in shards for i in s]
    assert sorted(flat) == list(range(n)) and len(flat) == n  # every index exactly once, no padding
    lengths = [len(ExactDistributedSampler(n, r, world_size)) for r in range(world_size)]
    assert lengths == [len(s) for s in shards]
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_shuffle_depends_only_on_seed_and_epoch():
    a = ShuffleSampler(50, seed=7)
    np.random.seed(123)
    torch.manual_seed(456)
    b = ShuffleSampler(50, seed=7)
    assert list(a) == list(b) and sorted(a) == list(range(50)) and list(a) != list(range(50))
    a.set_epoch(1)
    assert list(a) != list(b)
    b.set_epoch(1)
    np.random.rand(10)  # global state must not matter
    assert list(a) == list(b)
    assert list(ShuffleSampler(50, seed=8)) != list(ShuffleSampler(50, seed=7))


@pytest.mark.parametrize("world_size", [1, 2, 3, 4, 5])
def test_shuffle_shards_and_resume(world_size):
    n = 23
    shards = [ShuffleSampler(n, 3, r, world_size) for r in range(world_size)]
    for s in shards:
        s.set_epoch(2)
    flat = [i for s in shards for i in s]
    expected = n - n % world_size  # cut to a multiple of world_size (nothing cut for one rank)
    assert len(flat) == len(set(flat)) == expected and set(flat) <= set(range(n))
    assert len({len(s) for s in shards}) == 1 and len(shards[0]) == n // world_size
    full = list(shards[-1])
    shards[-1].set_epoch(2, skip=3)
    assert list(shards[-1]) == full[3:] and len(shards[-1]) == len(full) - 3


def test_defaults_without_a_process_group():
    assert list(ExactDistributedSampler(3)) == [0, 1, 2] and len(ShuffleSampler(3, seed=0)) == 3


def test_bad_arguments():
    with pytest.raises(ValueError):
        ExactDistributedSampler(5, 3, 3)
    with pytest.raises(ValueError):
        ShuffleSampler(5, 0, 0, 0)
    with pytest.raises(ValueError):
        ShuffleSampler(5, 0).set_epoch(-1)
