"""The loop's ``ModelSpec.fit`` hook: run once when a run starts fresh, its buffers reach the EMA
weights and the checkpoint, and a resumed run reads them back instead of fitting again."""

from __future__ import annotations

from dataclasses import replace

import pytest
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


@pytest.mark.parametrize("uses", [dict(logit_adjust=0.5), dict(balance_from="split")])
def test_tokenizer_split_frequencies_count_the_training_frames_and_reach_the_checkpoint(
        tiny_dataset, tmp_path, uses):
    import numpy as np

    from occ4d.data.index import load_frame, load_index
    from occ4d.models.tokenizers.tokenizer import enet_log_weights
    from occ4d.train.registry import load_model

    run = tmp_path / "run"
    cfg = tiny_config(tiny_dataset, run, max_steps=2)
    cfg = replace(cfg, model=replace(cfg.model, class_balanced=True, **uses))
    train(get_spec("tokenizer"), cfg)
    counts = np.zeros(18)
    for r in load_index(tiny_dataset, "train"):
        counts += np.bincount(np.asarray(load_frame(r).semantics).reshape(-1), minlength=18)[:18]
    expected = enet_log_weights(torch.from_numpy(counts / counts.sum())).float()
    tensors, _ = load_checkpoint(run)
    torch.testing.assert_close(tensors["ema"]["class_log_weight"], expected)
    model, _, _ = load_model(run, ema=True)
    torch.testing.assert_close(model.class_log_weight, expected)
    # the most frequent class (free space) carries the smallest weight, so it gains the most
    assert int(model.class_log_weight.argmin()) == int(counts.argmax())
