"""The training loop end to end on a tiny tokenizer: logs, checkpoints, kill + resume, config guard."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from _train_tiny import CLI_TINY, tiny_config

from occ4d.train.checkpoint import list_checkpoints, load_checkpoint
from occ4d.train.logger import read_log
from occ4d.train.loop import train
from occ4d.train.registry import get_spec, load_model


def occ4d(*args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "occ4d.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_run_writes_log_checkpoints_and_evaluates(tiny_dataset, tmp_path):
    run = train(get_spec("tokenizer"), tiny_config(tiny_dataset, tmp_path / "run"))
    assert list_checkpoints(run) == [4, 6]  # keep_last=2 of a checkpoint every 2 steps, 6 steps
    log = read_log(run)
    train_rows = [r for r in log if r["kind"] == "train"]
    assert [r["step"] for r in train_rows] == list(range(1, 7))
    assert all(r["samples"] == 2 * r["step"] for r in train_rows)
    assert train_rows[0]["lr"] < train_rows[1]["lr"]  # warmup, then cosine decay
    assert train_rows[-1]["lr"] < train_rows[2]["lr"]
    assert all({"loss", "ce", "quant", "usage", "perplexity", "grad_norm"} <= set(r) for r in train_rows)
    (final,) = [r for r in log if r["kind"] == "eval"]
    assert final["compression"] == 16.0 and 0 <= final["mIoU"] <= 100 and "mIoU_camera" in final
    assert {"IoU_car", "IoU_pedestrian", "IoU_truck"} <= set(final)  # the dynamic classes apart
    model, cfg, state = load_model(run)
    assert state["samples"] == 12 and cfg.model.codebook_size == 32
    tensors, _ = load_checkpoint(run)
    ema = tensors["ema"]
    assert all(torch.equal(v, ema[k]) for k, v in model.state_dict().items())
    assert not all(torch.equal(v, tensors["model"][k]) for k, v in ema.items())  # EMA differs


def test_killed_run_resumes_bit_identical(tiny_dataset, tmp_path):
    data = ("--data", str(tiny_dataset))
    straight = occ4d("train", "tokenizer", *data, "--out", str(tmp_path / "a"), *CLI_TINY)
    killed = occ4d("train", "tokenizer", *data, "--out", str(tmp_path / "b"), *CLI_TINY)
    deadline = time.time() + 120
    while not (tmp_path / "b" / "ckpt-00000002.json").exists():
        assert killed.poll() is None, killed.communicate()[0]
        assert time.time() < deadline
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert max(list_checkpoints(tmp_path / "b")) < 6  # really stopped mid-run
    resumed = occ4d("train", "tokenizer", "--data", str(tiny_dataset), "--out", str(tmp_path / "b"),
                    *CLI_TINY, "--resume")
    out_r, out_s = resumed.communicate()[0], straight.communicate()[0]
    assert resumed.returncode == 0, out_r
    assert straight.returncode == 0, out_s
    assert "resumed ckpt-" in out_r
    a, sa = load_checkpoint(tmp_path / "a")
    b, sb = load_checkpoint(tmp_path / "b")
    assert sa["step"] == sb["step"] == 6 and sa["samples"] == sb["samples"]
    assert a.keys() == b.keys()
    for group in a:
        assert a[group].keys() == b[group].keys()
        for name in a[group]:
            assert torch.equal(a[group][name], b[group][name]), f"{group}.{name} differs after resume"
    strip = ("time", "samples_per_s", "frames_per_s", "peak_rss_MiB")  # machine figures
    la = [{k: v for k, v in r.items() if k not in strip} for r in read_log(tmp_path / "a")]
    lb = [{k: v for k, v in r.items() if k not in strip} for r in read_log(tmp_path / "b")]
    assert la == lb  # the resumed log reads as one unbroken run


def test_resume_refuses_a_different_model(tiny_dataset, tmp_path):
    cfg = tiny_config(tiny_dataset, tmp_path / "run", max_steps=1)
    train(get_spec("tokenizer"), cfg)
    other = replace(cfg, model=replace(cfg.model, codebook_size=64), run=replace(cfg.run, resume=True))
    with pytest.raises(ValueError, match="cannot resume"):
        train(get_spec("tokenizer"), other)
    with pytest.raises(ValueError, match="already holds checkpoints"):
        train(get_spec("tokenizer"), cfg)  # a fresh run never mixes with an old one
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"]["codebook_size"] == 32


def test_optimizer_is_fused_adamw_with_the_configured_hyperparameters():
    from occ4d.train.loop import build_optimizer

    optim = replace(tiny_config(Path("/nonexistent"), Path("/nonexistent")).optim,
                    lr=3e-3, weight_decay=0.05, beta1=0.8, beta2=0.95)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Linear(5, 3))
    model[0].requires_grad_(False)  # a frozen part keeps its place in the optimiser's state
    reference = [p.detach().clone() for p in model.parameters()]
    opt = build_optimizer(model, optim)
    group = opt.param_groups[0]
    assert group["fused"] and len(group["params"]) == 4
    assert (group["lr"], group["weight_decay"], group["betas"]) == (3e-3, 0.05, (0.8, 0.95))
    plain_params = [torch.nn.Parameter(p.clone()) for p in reference]
    plain = torch.optim.AdamW(plain_params, lr=3e-3, weight_decay=0.05, betas=(0.8, 0.95))
    x = torch.randn(7, 6)
    for _ in range(3):
        model(x).square().sum().backward()
        h = x @ plain_params[0].T + plain_params[1]
        (h @ plain_params[2].T + plain_params[3]).square().sum().backward()
        plain_params[0].grad = plain_params[1].grad = None
        opt.step(), plain.step()
        opt.zero_grad(), plain.zero_grad()
    for p, q in zip(model.parameters(), plain_params, strict=True):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-5, atol=1e-6)
    assert torch.equal(model[0].weight, reference[0]) and not torch.equal(model[1].weight, reference[2])


def test_init_seed_sets_the_initial_weights_apart_from_the_run_seed(tiny_dataset, tmp_path):
    tokenizer = get_spec("tokenizer")
    initial = {}

    def build(cfg):
        model = tokenizer.build(cfg)
        initial[len(initial)] = {k: v.clone() for k, v in model.state_dict().items()}
        return model

    spec = replace(tokenizer, build=build)
    for i, run in enumerate([dict(seed=1, init_seed=0), dict(seed=0), dict(seed=1)]):
        train(spec, tiny_config(tiny_dataset, tmp_path / f"run{i}", max_steps=1, **run))
    weights = [initial[i]["encoder.conv_in.weight"] for i in range(3)]
    assert torch.equal(weights[0], weights[1]) and not torch.equal(weights[0], weights[2])
    logs = [read_log(tmp_path / f"run{i}") for i in (0, 1)]
    assert logs[0][0]["loss"] != logs[1][0]["loss"]  # same weights, seed 1's crops and order
    with pytest.raises(ValueError, match="init_seed"):
        tiny_config(tiny_dataset, tmp_path / "bad", init_seed=-2)
