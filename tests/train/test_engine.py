"""Engine parts alone: configs and the generated CLI, schedule, EMA, checkpoints, log."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch
import tyro

from occ4d.core.errors import DataError
from occ4d.train.checkpoint import (
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    optimizer_from_flat,
    optimizer_to_flat,
    save_checkpoint,
)
from occ4d.train.config import OptimConfig, RunConfig, load_train_config, to_dict
from occ4d.train.ema import EMA
from occ4d.train.logger import RunLogger, read_log
from occ4d.train.registry import SPECS, get_spec
from occ4d.train.schedule import lr_at


def test_cli_starts_from_the_preset_and_applies_overrides(tmp_path):
    from occ4d.commands.train import TrainArgs, build_config

    argv = ["tokenizer", "--preset", "occsora", "--data", "d", "--out", str(tmp_path),
            "--model.codebook-size", "1024", "--model.channel-mult", "1", "2", "2",
            "--optim.lr", "3e-4", "--clips.frames", "16", "--run.seed", "7"]
    args = tyro.cli(TrainArgs, args=argv)
    cfg = build_config("tokenizer", args)
    preset = get_spec("tokenizer").presets["occsora"]
    assert cfg.model == replace(preset.model, codebook_size=1024, channel_mult=(1, 2, 2))
    assert cfg.optim == replace(preset.optim, lr=3e-4)
    assert cfg.data == replace(preset.data, frames=16, root="d")
    assert cfg.run == RunConfig(out=str(tmp_path), seed=7)
    # the saved JSON rebuilds the same frozen config
    back = load_train_config(json.loads(json.dumps(to_dict(cfg))), get_spec("tokenizer").config_type)
    assert back == cfg


def test_cli_reports_invalid_overrides_without_a_traceback():
    from occ4d.commands.train import TrainArgs, build_config

    args = tyro.cli(TrainArgs, args=["tokenizer", "--data", "d", "--out", "o", "--optim.warmup-samples", "10",
                                     "--optim.total-samples", "5"])
    with pytest.raises(SystemExit, match="warmup_samples"):
        build_config("tokenizer", args)
    with pytest.raises(SystemExit, match="--data"):
        build_config("tokenizer", tyro.cli(TrainArgs, args=["tokenizer", "--out", "o"]))


def test_every_registered_spec_has_consistent_presets():
    for name in SPECS:
        spec = get_spec(name)
        assert spec.presets, name
        for preset in spec.presets.values():
            assert isinstance(preset.model, spec.config_type)


def test_configs_validate():
    with pytest.raises(ValueError):
        OptimConfig(total_samples=10, warmup_samples=20)
    with pytest.raises(ValueError):
        OptimConfig(ema_decay=1.0)
    with pytest.raises(ValueError):
        RunConfig(precision="fp16")  # type: ignore[arg-type]


def test_schedule_warms_up_then_follows_the_cosine():
    cfg = OptimConfig(lr=1.0, total_samples=1000, warmup_samples=100, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(0.01)
    assert lr_at(99, cfg) == pytest.approx(1.0)
    assert lr_at(100, cfg) == pytest.approx(1.0)
    assert lr_at(550, cfg) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_at(1000, cfg) == pytest.approx(0.1)
    assert lr_at(5000, cfg) == pytest.approx(0.1)  # clamped past the end


def test_ema_averages_parameters_and_copies_buffers():
    net = torch.nn.BatchNorm1d(2)
    ema = EMA(net, decay=0.5)
    with torch.no_grad():
        net.weight.fill_(3.0)
        net.running_mean.fill_(7.0)
    ema.update(net, step=1000)  # decay_at(1000) = min(0.5, ...) = 0.5
    assert torch.allclose(ema.model.weight, torch.full((2,), 2.0))  # 0.5 * 1 + 0.5 * 3
    assert torch.equal(ema.model.running_mean, torch.full((2,), 7.0))
    assert EMA(net, 0.999).decay_at(0) == pytest.approx(0.1)  # ramps up from (1 + 0) / (10 + 0)


def _optimizer():
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(net.parameters(), lr=0.1)
    net(torch.ones(4, 3)).sum().backward()
    opt.step()
    return net, opt


def test_checkpoint_round_trip_is_exact_and_keeps_the_last_k(tmp_path):
    net, opt = _optimizer()
    tensors, meta = optimizer_to_flat(opt)
    for step in (1, 2, 3, 4):
        save_checkpoint(tmp_path, step, {"model": net.state_dict(), "optim": tensors},
                        {"samples": step * 8, "optimizer": meta}, keep_last=2)
    assert list_checkpoints(tmp_path) == [3, 4]
    assert latest_checkpoint(tmp_path).name == "ckpt-00000004.json"
    groups, state = load_checkpoint(tmp_path)
    assert state["step"] == 4 and state["samples"] == 32
    assert all(torch.equal(v, groups["model"][k]) for k, v in net.state_dict().items())
    net2 = torch.nn.Linear(3, 2)
    opt2 = torch.optim.AdamW(net2.parameters(), lr=0.5)
    optimizer_from_flat(opt2, groups["optim"], state["optimizer"])
    a, b = opt.state_dict(), opt2.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for idx in a["state"]:
        for key, value in a["state"][idx].items():
            assert torch.equal(value, b["state"][idx][key])
    assert not list(tmp_path.glob("*.tmp"))  # atomic writes leave no temporaries


def test_incomplete_or_corrupt_checkpoints_are_not_loaded(tmp_path):
    net, _ = _optimizer()
    save_checkpoint(tmp_path, 5, {"model": net.state_dict()}, {}, keep_last=3)
    (tmp_path / "ckpt-00000009.safetensors").write_bytes(b"half a file")  # no JSON: never finished
    assert list_checkpoints(tmp_path) == [5]
    (tmp_path / "ckpt-00000005.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(DataError, match="ckpt-00000005.safetensors"):
        load_checkpoint(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no complete checkpoint"):
        load_checkpoint(tmp_path / "empty")


def test_log_keeps_every_record_and_drops_lines_past_the_resumed_step(tmp_path):
    log = RunLogger(tmp_path)
    for step in (1, 2, 3):
        log.log("train", step, step * 4, {"loss": 1.0 / step, "bad": float("nan")})
    log.close()
    with (tmp_path / "metrics.jsonl").open("a") as fh:
        fh.write('{"kind": "train", "ste')  # a line cut by a kill
    RunLogger(tmp_path, resume_step=2).log("eval", 2, 8, {"mIoU": 50.0})
    records = read_log(tmp_path)
    assert [(r["kind"], r["step"]) for r in records] == [("train", 1), ("train", 2), ("eval", 2)]
    assert records[0]["bad"] is None and records[1]["loss"] == 0.5
