"""The one training loop, read top to bottom: setup, loop, log, checkpoint, evaluate.

Determinism (PROTOCOLS-independent, DESIGN "Resume is part of the design"): the weights are
initialised from ``seed`` (or ``init_seed``); the data order is a function of (seed, samples
seen) only; before every optimiser step torch's RNG is reseeded from (seed, rank, step). The
optimiser, EMA and model tensors are checkpointed exactly (safetensors) and the schedule is a
function of samples seen, so on CPU a run stopped at any checkpoint and resumed ends
bit-identical to an unbroken run with the same number of processes.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, Sampler

from occ4d.io.atomic import remove_temps, write_json
from occ4d.train import distributed as dist
from occ4d.train.checkpoint import latest_checkpoint, load_checkpoint, optimizer_from_flat, optimizer_to_flat
from occ4d.train.checkpoint import save_checkpoint as _save
from occ4d.train.config import OptimConfig, TrainConfig, to_dict
from occ4d.train.ema import EMA
from occ4d.train.logger import RunLogger
from occ4d.train.registry import ModelSpec
from occ4d.train.schedule import lr_at


def step_seed(seed: int, rank: int, step: int) -> int:
    """The RNG seed of one optimiser step on one process."""
    return (seed * 1_000_003 + rank * 7_919 + step * 104_729 + 12_345) % (2**63 - 1)


def build_optimizer(model: torch.nn.Module, optim: OptimConfig) -> torch.optim.AdamW:
    """AdamW over every parameter, with the fused kernel wherever torch has one.

    The fused kernel is the same update in one pass over each tensor instead of a Python loop
    over the parameters: on the 2-core CPU (2 threads) a training step was 1.08x faster for
    tiny-512x, 1.13x for tiny-512x-kl and 1.44x for tiny-rvq (``benchmarks/tokenizers.py
    precision``). A checkpoint written without it resumes with the settings it was saved with.
    """
    params = list(model.parameters())  # frozen ones too: the checkpoints' state indices count them
    fused = bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.AdamW(params, lr=optim.lr, weight_decay=optim.weight_decay,
                             betas=(optim.beta1, optim.beta2), fused=fused or None)


class SampleStream(Sampler[list[int]]):
    """Micro-batches of dataset indices for one process, from global sample position ``start``.

    Global position p reads element p mod N of the permutation of epoch p div N, drawn from a
    generator seeded with (seed, epoch). Process r of W takes positions
    ``base + r*batch ... base + (r+1)*batch - 1`` of each micro-step, so a resumed run continues
    exactly where it stopped, and the union over processes is what one process would read.
    """

    def __init__(self, n: int, batch: int, seed: int, start: int, rank: int = 0, world: int = 1):
        if n <= 0:
            raise ValueError("the training set is empty")
        self.n, self.batch, self.seed, self.start, self.rank, self.world = n, batch, seed, start, rank, world
        self._perm: tuple[int, torch.Tensor] | None = None

    def _index(self, p: int) -> int:
        epoch = p // self.n
        if self._perm is None or self._perm[0] != epoch:
            g = torch.Generator().manual_seed(self.seed * 65_537 + epoch)
            self._perm = (epoch, torch.randperm(self.n, generator=g))
        return int(self._perm[1][p % self.n])

    def __iter__(self) -> Iterator[list[int]]:
        p = self.start
        while True:
            base = p + self.rank * self.batch
            yield [self._index(base + b) for b in range(self.batch)]
            p += self.batch * self.world

    def __len__(self) -> int:  # infinite in practice; DataLoader only needs a number
        return 2**62


def _to_device(batch, device: torch.device):
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def _comparable(config: dict) -> dict:
    """The parts of a config (as a dict) a resumed run must share with the run it continues."""
    d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in config.items()}
    d.pop("run")
    d["data"].pop("root", None)
    d["data"].pop("num_workers", None)
    return d


def train(spec: ModelSpec, cfg: TrainConfig) -> Path:
    """Train ``spec``'s model as ``cfg`` says; returns the run folder. Works alone or under torchrun."""
    # ---------------------------------------------------------------- setup
    device = dist.init(cfg.run.device)
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    rank, world = dist.rank(), dist.world_size()
    run_dir = Path(cfg.run.out)
    use_bf16 = cfg.run.precision == "bf16" or (cfg.run.precision == "auto" and device.type == "cuda")
    # the same initial weights on every process
    torch.manual_seed(cfg.run.seed if cfg.run.init_seed < 0 else cfg.run.init_seed)
    model = spec.build(cfg.model).to(device)
    ema = EMA(model, cfg.optim.ema_decay) if cfg.optim.ema_decay > 0 else None
    optimizer = build_optimizer(model, cfg.optim)
    step, samples = 0, 0
    latest = latest_checkpoint(run_dir)
    if latest is not None and not cfg.run.resume:
        raise ValueError(f"{run_dir} already holds checkpoints ({latest.name}): pass --resume to continue "
                         "that run, or choose another --out")
    if latest is not None:
        tensors, state = load_checkpoint(latest)
        if _comparable(state["config"]) != _comparable(to_dict(cfg)):
            raise ValueError(f"{latest}: cannot resume a run with another model, data or optimiser config")
        model.load_state_dict(tensors["model"])
        if ema is not None:
            ema.load_state_dict(tensors["ema"])
        optimizer_from_flat(optimizer, tensors.get("optim", {}), state["optimizer"])
        step, samples = int(state["step"]), int(state["samples"])
        dist.print0(f"resumed {latest.name}: step {step}, {samples} samples")
    per_step = cfg.data.batch_size * cfg.optim.accum * world
    total_steps = math.ceil(cfg.optim.total_samples / per_step)
    every = {k: max(1, round(getattr(cfg.run, k) / per_step))
             for k in ("log_every", "ckpt_every", "eval_every")}
    ddp = DistributedDataParallel(model) if world > 1 else model
    train_set = spec.dataset(cfg, cfg.data.train_split)
    if spec.fit is not None and latest is None:
        spec.fit(model, train_set, cfg)  # buffers computed from the training data, saved with the weights
        if ema is not None:
            ema.model.load_state_dict(model.state_dict())
    val_set: Dataset | None = None
    stream = SampleStream(len(train_set), cfg.data.batch_size, cfg.run.seed,
                          start=samples, rank=rank, world=world)
    batches = iter(DataLoader(train_set, batch_sampler=stream, num_workers=cfg.data.num_workers,
                              collate_fn=spec.collate, pin_memory=device.type == "cuda"))
    logger = None
    if rank == 0:
        remove_temps(run_dir)  # half-written files of a killed run; every reader ignores them
        logger = RunLogger(run_dir, cfg.run.tensorboard, resume_step=step if latest else None)
        write_json(run_dir / "config.json", to_dict(cfg))
    dist.print0(f"{spec.name}/{cfg.preset}: {sum(p.numel() for p in model.parameters()):,} parameters, "
                f"{world} process(es) on {device}, {per_step} samples/step, steps {step}->{total_steps}")

    def save_checkpoint() -> None:
        if rank == 0:
            opt_tensors, opt_meta = optimizer_to_flat(optimizer)
            groups = {"model": model.state_dict(), "optim": opt_tensors}
            if ema is not None:
                groups["ema"] = ema.state_dict()
            state = {"config": to_dict(cfg), "samples": samples, "seed": cfg.run.seed, "world_size": world,
                     "optimizer": opt_meta}
            _save(run_dir, step, groups, state, cfg.run.keep_last)
        dist.barrier()

    def evaluate() -> dict[str, float]:
        nonlocal val_set
        val_set = val_set or spec.dataset(cfg, cfg.data.val_split)
        net = ema.model if ema is not None else model
        was_training = net.training
        net.eval()
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            results = spec.evaluate(net, val_set, cfg, device)
        net.train(was_training)
        if logger is not None:
            logger.log("eval", step, samples, results)
        return results

    # ---------------------------------------------------------------- loop
    bar = None
    if rank == 0 and cfg.run.progress:
        from occ4d.core.progress import Progress

        bar = Progress(total=total_steps, initial=step, desc=f"train {spec.name}", unit="step")
    model.train()
    steps_this_run, window, t0 = 0, [], time.perf_counter()
    while step < total_steps and not (cfg.run.max_steps and steps_this_run >= cfg.run.max_steps):
        torch.manual_seed(step_seed(cfg.run.seed, rank, step))
        lr = lr_at(samples, cfg.optim)
        for group in optimizer.param_groups:
            group["lr"] = lr
        stats: dict[str, float] = {}
        for micro in range(cfg.optim.accum):
            batch = _to_device(next(batches), device)
            sync = contextlib.nullcontext() if micro == cfg.optim.accum - 1 or world == 1 else ddp.no_sync()
            with sync:
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                    loss, micro_stats = spec.loss(ddp, batch, cfg)
                (loss / cfg.optim.accum).backward()
            for k, v in {"loss": float(loss.detach()), **micro_stats}.items():
                stats[k] = stats.get(k, 0.0) + v / cfg.optim.accum
        if cfg.optim.grad_clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            stats["grad_norm"] = float(norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.update(model, step)
        step += 1
        samples += per_step
        steps_this_run += 1
        window.append(stats)

        # ------------------------------------------------------------ log
        if step % every["log_every"] == 0 or step == total_steps:
            mean = {k: sum(s[k] for s in window) / len(window) for k in window[0]}
            mean = dist.mean_over_processes(mean, device)
            elapsed = time.perf_counter() - t0
            mean.update(lr=lr, samples_per_s=len(window) * per_step / max(elapsed, 1e-9),
                        peak_rss_MiB=_peak_rss_mib())
            if logger is not None:
                logger.log("train", step, samples, mean)
            window, t0 = [], time.perf_counter()
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{stats['loss']:.4f}", lr=f"{lr:.2e}")

        # ------------------------------------------------------------ evaluate
        # Before the checkpoint, so a checkpoint of step N means everything up to N is logged: a
        # run killed in an evaluation resumes from the checkpoint before it and evaluates again.
        if step == total_steps or (cfg.run.eval_every and step % every["eval_every"] == 0):
            results = evaluate()
            if step == total_steps:
                dist.print0("final evaluation: " + ", ".join(f"{k}={v:.4g}" for k, v in results.items()))

        # ------------------------------------------------------------ checkpoint
        if step % every["ckpt_every"] == 0 or step == total_steps:
            save_checkpoint()

    if bar is not None:
        bar.close()
    if steps_this_run and step < total_steps and step % every["ckpt_every"]:
        save_checkpoint()  # stopped by max_steps: keep the progress
    if logger is not None:
        logger.close()
    dist.shutdown()
    return run_dir


def _peak_rss_mib() -> float:
    """This process's peak resident memory so far, MiB (Linux reports ru_maxrss in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
