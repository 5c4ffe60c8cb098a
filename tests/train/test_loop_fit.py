"""The loop's ``ModelSpec.fit`` hook: run once when a run starts fresh, its buffers reach the EMA
weights and the checkpoint, and a resumed run reads them back instead of fitting again."""

from __future__ import annotations

from dataclasses import replace

import torch
from _train_tiny import tiny_config

from occ4d.train.checkpoint import load_checkpoint
from occ4d.train.loop import train
from occ4d.train.registry import get_spec


def test_fit_runs_once_on_a_fresh_run_and_is_kept_on_resume(tiny_dataset, tmp_path):
    tokenizer = get_spec("tokenizer")
    calls = []

    def build(cfg):
        model = tokenizer.build(cfg)
        model.register_buffer("fitted", torch.zeros(3))  # a data-derived buffer, like a class prior
        return model

    def fit(model, data, cfg):
        calls.append(cfg.run.out)
        model.fitted.fill_(float(len(data)))

    spec = replace(tokenizer, build=build, fit=fit)
    run = tmp_path / "run"
    train(spec, tiny_config(tiny_dataset, run, max_steps=2))
    n = len(tokenizer.dataset(tiny_config(tiny_dataset, run), "train"))
    assert calls == [str(run)] and n > 0
    tensors, _ = load_checkpoint(run)
    assert tensors["model"]["fitted"].tolist() == [n] * 3
    assert tensors["ema"]["fitted"].tolist() == [n] * 3
    train(spec, tiny_config(tiny_dataset, run, resume=True, max_steps=2))
    assert calls == [str(run)]  # resumed: the buffer comes from the checkpoint, not a second fit
    tensors, state = load_checkpoint(run)
    assert state["step"] == 4 and tensors["ema"]["fitted"].tolist() == [n] * 3
