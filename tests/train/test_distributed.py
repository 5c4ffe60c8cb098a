"""The same training command under ``torchrun --nproc_per_node=2`` on CPU (gloo)."""

from __future__ import annotations

import os
import subprocess
import sys

import torch
from _train_tiny import CLI_TINY

from occ4d.train.checkpoint import load_checkpoint
from occ4d.train.logger import read_log
from occ4d.train.loop import SampleStream
from occ4d.train.registry import load_model


def test_two_process_cpu_training_loads_in_one_process(tiny_dataset, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "occ4d.cli", "train", "tokenizer", "--data", str(tiny_dataset),
           "--out", str(tmp_path / "ddp"), *CLI_TINY]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 process(es) on cpu, 4 samples/step" in done.stdout
    tensors, state = load_checkpoint(tmp_path / "ddp")
    assert state["world_size"] == 2 and state["step"] == 3 and state["samples"] == 12
    model, cfg, _ = load_model(tmp_path / "ddp")  # one process, no process group
    occ = torch.randint(0, 18, (1, 1, 200, 200, 16))
    assert model.reconstruct(occ).shape == (1, 1, 200, 200, 16)
    log = read_log(tmp_path / "ddp")
    assert [r["samples"] for r in log if r["kind"] == "train"] == [4, 8, 12]
    (final,) = [r for r in log if r["kind"] == "eval"]
    assert final["frames"] == 1.0  # max_val_samples=1: scored once, not once per process


def test_sample_stream_splits_the_single_process_order():
    one = iter(SampleStream(n=7, batch=4, seed=3, start=0))
    r0 = iter(SampleStream(n=7, batch=2, seed=3, start=0, rank=0, world=2))
    r1 = iter(SampleStream(n=7, batch=2, seed=3, start=0, rank=1, world=2))
    for _ in range(5):  # crosses epoch boundaries (7 is not a multiple of 4)
        assert next(one) == next(r0) + next(r1)
    epoch = [i for _, b in zip(range(7), iter(SampleStream(n=7, batch=1, seed=3, start=0)), strict=False)
             for i in b]
    assert sorted(epoch) == list(range(7))  # an epoch is a permutation
    resumed = iter(SampleStream(n=7, batch=4, seed=3, start=8))
    fresh = iter(SampleStream(n=7, batch=4, seed=3, start=0))
    next(fresh), next(fresh)
    assert next(resumed) == next(fresh)  # starting at sample 8 continues the same order
