"""Tokenizer benchmarks: size, FLOPs, speed and memory per preset, and reconstruction quality.

    python benchmarks/tokenizers.py speed [--presets tiny-vqvae occworld ...] [--device cpu]
    python benchmarks/tokenizers.py precision [--presets tiny-rvq tiny-vae] [--device cpu]
    python benchmarks/tokenizers.py quality --data SYNTH --runs RUNS [--train] [--others W1 W2]
        [--real ../shared/data]
    python benchmarks/tokenizers.py ablate --data SYNTH --runs RUNS [--preset tiny-vqvae] [--samples 600]

``speed`` measures every preset in a fresh subprocess (so peak memory is that preset's own):
parameters; forward FLOPs per clip at the preset's full clip size (torch.utils.flop_counter on
the meta device for the conv backbone, plus the bottleneck and class-logit matmuls counted
from their shapes); training samples/s (the preset's batch and crop) and encode+decode frames/s;
peak memory (CPU: the subprocess's max RSS, torch included; CUDA: max allocated). On CPU the
paper-size presets (0.2-3.5 TFLOP per clip forward) are only sized, not timed, unless
``--time-paper`` is given; then 4D ones are timed on 8-frame clips (cost is linear in T).

``precision`` times one training step of each preset in fp32, under bf16 autocast and with
channels_last weights and activations (the CPU levers of issue 14), and with AdamW's
per-parameter loop instead of its fused kernel, median of five steps.

``ablate`` trains the preset once per lever of :data:`LEVERS` at the same sample budget (one
``occ4d train tokenizer`` each, in a subprocess, one thread; a finished run is reused) and prints
one row per lever: validation mIoU / IoU, the IoU of cars and pedestrians, train minutes,
samples/s and the run's peak RSS.

``quality`` reads (or with ``--train`` first runs) ``occ4d train tokenizer --preset P`` for the
tiny presets into RUNS/P and prints their final validation figures (mIoU, IoU, the dynamic
classes' IoU, compression, train minutes, samples/s, peak RSS from the run's log) beside the
hand-written 16x codec; ``--others`` scores each model on other worlds' validation splits, and
``--real`` reconstructs the real Occ3D frames with each trained per-frame model (the domain gap).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

TINY = ("tiny-vqvae", "tiny-rvq", "tiny-vae", "tiny-vqvae4d", "tiny-512x", "tiny-512x-kl")


def flops_per_clip(name: str) -> float:
    """Forward FLOPs of one clip of the preset's length at the full grid."""
    import torch

    from occ4d.models.tokenizers import OccTokenizer
    from occ4d.models.tokenizers.recipe import PRESETS
    from occ4d.models.tokenizers.tokenizer import network_flops

    preset = PRESETS[name]
    cfg, frames = preset.model, preset.data.frames
    x, y, z = cfg.grid
    total = network_flops(cfg, frames)
    with torch.device("meta"):  # shapes only
        model = OccTokenizer(cfg)
    tokens = frames * x * y / model.compression_ratio(frames)
    if cfg.bottleneck in ("vq", "rvq"):  # distances to every code, of each residual stage
        depth = cfg.rvq_depth if cfg.bottleneck == "rvq" else 1
        total += 2.0 * depth * tokens * cfg.codebook_size * cfg.latent_dim
    total += 2.0 * frames * x * y * z * cfg.expansion * cfg.num_classes  # per-voxel class logits
    return total


def _still_poses(occ):
    """Identity ego-to-global poses (B, T, 4, 4) for a random clip: an aligned preset's input."""
    import torch

    b, t = occ.shape[:2]
    return torch.eye(4, dtype=torch.float64, device=occ.device).repeat(b, t, 1, 1)


def precision(args) -> None:
    """Training-step time of each preset in fp32, bf16 autocast and channels_last on this device,
    and in fp32 with AdamW's per-parameter loop instead of the fused kernel the training loop
    uses; median of ``--repeats`` steps after two warm-up steps, one process, the preset's batch."""
    import torch

    from occ4d.models.tokenizers import OccTokenizer, tokenizer_loss
    from occ4d.models.tokenizers.recipe import PRESETS
    from occ4d.train.loop import build_optimizer

    dev = torch.device(args.device)
    print(f"training step seconds on {dev} ({torch.get_num_threads()} threads), median of {args.repeats}")
    head = (f"{'preset':<13}{'fp32':>8}{'bf16':>8}{'chan-last':>10}{'bf16 speed-up':>15}{'cl speed-up':>13}"
            f"{'unfused AdamW':>15}{'fused speed-up':>16}")
    print(head)
    print("-" * len(head))
    for name in args.presets:
        preset = PRESETS[name]
        cfg = preset.model
        torch.manual_seed(0)
        shape = (preset.data.batch_size, preset.data.frames, *cfg.grid)
        occ = torch.randint(0, cfg.num_classes, shape, device=dev)
        poses = _still_poses(occ) if cfg.align_poses else None
        times = {}
        for mode in ("fp32", "bf16", "channels_last", "unfused"):
            torch.manual_seed(0)
            model = OccTokenizer(cfg).to(dev)
            if mode == "channels_last":
                fmt = torch.channels_last if cfg.backbone == "2d" else torch.channels_last_3d
                model = model.to(memory_format=fmt)
            if mode == "unfused":  # the loop over parameters AdamW runs without its fused kernel
                opt = torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=False, fused=False)
            else:
                opt = build_optimizer(model, replace(preset.optim, lr=1e-4))
            steps = []
            for i in range(args.repeats + 2):
                t0 = time.perf_counter()
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=mode == "bf16"):
                    loss, _ = tokenizer_loss(model, occ, cfg, poses)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
                if i >= 2:
                    steps.append(time.perf_counter() - t0)
            times[mode] = sorted(steps)[len(steps) // 2]
        print(f"{name:<13}{times['fp32']:>8.3f}{times['bf16']:>8.3f}{times['channels_last']:>10.3f}"
              f"{times['fp32'] / times['bf16']:>14.2f}x{times['fp32'] / times['channels_last']:>12.2f}x"
              f"{times['unfused']:>15.3f}{times['unfused'] / times['fp32']:>15.2f}x")


def measure(name: str, device: str, timed: bool = True) -> dict:
    """Everything of one preset, in this (fresh) process."""
    import torch

    from occ4d.models.tokenizers import OccTokenizer, tokenizer_loss
    from occ4d.models.tokenizers.recipe import PRESETS
    from occ4d.train.loop import build_optimizer

    dev = torch.device(device)
    preset = PRESETS[name]
    cfg = preset.model
    frames = preset.data.frames
    timed_frames = frames if (name in TINY or frames <= 8 or dev.type == "cuda") else 8
    torch.manual_seed(0)
    model = OccTokenizer(cfg).to(dev)
    params = sum(p.numel() for p in model.parameters())
    opt = build_optimizer(model, replace(preset.optim, lr=1e-4))
    occ = torch.randint(0, cfg.num_classes, (preset.data.batch_size, timed_frames, *cfg.grid), device=dev)
    poses = _still_poses(occ) if cfg.align_poses else None
    use_bf16 = dev.type == "cuda"

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def train_step():
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_bf16):
            loss, _ = tokenizer_loss(model, occ, cfg, poses)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    repeats = 3 if (name in TINY or dev.type == "cuda") else 1
    if not timed:
        return {"preset": name, "params_M": params / 1e6, "gflops_fwd_clip": flops_per_clip(name) / 1e9,
                "frames": frames, "compression": model.compression_ratio(frames), "device": str(dev),
                "threads": torch.get_num_threads(), "timed": False}
    train_step()  # warm-up (also initialises a VQ codebook)
    sync()
    t0 = time.perf_counter()
    for _ in range(repeats):
        train_step()
    sync()
    train_s = (time.perf_counter() - t0) / repeats
    model.eval()
    clip, clip_poses = occ[:1], None if poses is None else poses[:1]
    with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_bf16):
        model.decode(model.encode(clip, clip_poses).latent, timed_frames, poses=clip_poses)
        sync()
        t0 = time.perf_counter()
        for _ in range(repeats):
            model.decode(model.encode(clip, clip_poses).latent, timed_frames, poses=clip_poses)
        sync()
        codec_s = (time.perf_counter() - t0) / repeats
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated(dev) / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    crop = f"crop {cfg.train_crop}" if cfg.train_crop else "full grid"
    return {
        "preset": name, "params_M": params / 1e6, "gflops_fwd_clip": flops_per_clip(name) / 1e9,
        "frames": frames, "timed_frames": timed_frames, "batch": preset.data.batch_size, "train_input": crop,
        "train_samples_s": preset.data.batch_size / train_s * (timed_frames / frames),
        "train_frames_s": preset.data.batch_size * timed_frames / train_s,
        "codec_frames_s": timed_frames / codec_s, "peak_mem_MiB": peak,
        "compression": model.compression_ratio(frames), "device": str(dev),
        "threads": torch.get_num_threads(), "timed": True,
    }


def speed(args) -> None:
    rows = []
    for name in args.presets:
        cmd = [sys.executable, __file__, "one", name, "--device", args.device]
        if name not in TINY and args.device == "cpu" and not args.time_paper:
            cmd.append("--size-only")
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            print(f"{name}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    head = (f"{'preset':<13}{'params':>9}{'GFLOP/clip':>12}{'T':>4}{'ratio':>7}{'train in':>11}"
            f"{'train smp/s':>12}{'train fr/s':>11}{'enc+dec fr/s':>13}{'peak MiB':>10}")
    print(f"device {args.device}, torch threads {rows[0]['threads'] if rows else '?'}")
    print(head)
    print("-" * len(head))
    for r in rows:
        if not r["timed"]:
            print(f"{r['preset']:<13}{r['params_M']:>8.2f}M{r['gflops_fwd_clip']:>12.1f}{r['frames']:>4}"
                  f"{r['compression']:>6.0f}x   (GPU preset: not timed on CPU)")
            continue
        note = "" if r["timed_frames"] == r["frames"] else f"  (timed on {r['timed_frames']}-frame clips)"
        print(f"{r['preset']:<13}{r['params_M']:>8.2f}M{r['gflops_fwd_clip']:>12.1f}{r['frames']:>4}"
              f"{r['compression']:>6.0f}x{r['train_input']:>11}{r['train_samples_s']:>12.3f}"
              f"{r['train_frames_s']:>11.2f}{r['codec_frames_s']:>13.2f}{r['peak_mem_MiB']:>10.0f}{note}")


def final_eval(run: Path) -> dict | None:
    from occ4d.train.logger import read_log

    if not (run / "metrics.jsonl").exists():
        return None
    evals = [r for r in read_log(run) if r["kind"] == "eval"]
    trains = [r for r in read_log(run) if r["kind"] == "train"]
    if not evals:
        return None
    out = dict(evals[-1])
    # wall time of the training steps: first log window (samples / its rate) up to the last record
    first = trains[0]["samples"] / trains[0]["samples_per_s"] if trains else float("nan")
    out["train_s"] = trains[-1]["time"] - trains[0]["time"] + first if trains else float("nan")
    peaks = [r["peak_rss_MiB"] for r in trains if r.get("peak_rss_MiB") is not None]
    out["peak_MiB"] = max(peaks) if peaks else float("nan")
    return out


def other_town(run: Path, data: Path) -> dict:
    """The run's model scored on the validation split of another world (its summary figures)."""
    import torch

    from occ4d.models.tokenizers.recipe import dataset, reconstruction_scores
    from occ4d.train.registry import load_model

    model, cfg, _ = load_model(run, ema=True, kind="tokenizer")
    model.eval()
    cfg = replace(cfg, data=replace(cfg.data, root=str(data), max_val_samples=0))
    with torch.no_grad():
        return reconstruction_scores(model, dataset(cfg, cfg.data.val_split), cfg, torch.device("cpu"))[0]


def real_frames_figure(run: Path, real: Path) -> dict | None:
    """Reconstruct the real Occ3D frames with a per-frame model trained on the synthetic world."""
    import torch

    from occ4d.io.occ3d import load_labels
    from occ4d.metrics.semantic import Occ3DMIoU
    from occ4d.train.registry import load_model

    paths = sorted(real.glob("occ3d-nuscenes/**/*.npz"))
    if not paths:
        return None
    model, cfg, _ = load_model(run)
    if cfg.data.frames != 1:
        return None
    plain, cam = Occ3DMIoU(mask="none"), Occ3DMIoU(mask="camera")
    for p in paths:
        frame = load_labels(p)
        occ = torch.from_numpy(frame.semantics)[None, None]
        pred = model.reconstruct(occ)[0, 0]
        plain.update(pred, frame.semantics)
        cam.update(pred, frame.semantics, mask_camera=frame.mask_camera)
    a, b = plain.compute(), cam.compute()
    return {"frames": len(paths), "mIoU": a["mIoU"], "IoU": a["IoU_geometry"], "mIoU_camera": b["mIoU"],
            "IoU_camera": b["IoU_geometry"]}


def pooled_baseline(data: Path, factor: int = 4, split: str = "val") -> dict:
    """The hand-written block-mode codec (occ4d.models.tokenizers.baseline) on ``split``."""
    from occ4d.models.tokenizers.baseline import block_mode_scores

    return block_mode_scores(data, factor, split)


def aligned_headroom(data: Path, frames: int = 8, split: str = "val") -> dict[str, dict]:
    """What one pose-aligned frame explains of the 4D presets' clips: the middle frame of every
    ``frames``-frame validation clip, warped to each frame of the clip with the known poses (no
    spatial compression: the ceiling of a tokenizer that stores the aligned scene and nothing that
    moves), and the same with :func:`block_mode` 8x8 on the middle frame (the 64x hand-written
    codec on the aligned frame). Scored like the tokenizers (no mask)."""
    import torch

    from occ4d.core.vocab import OCC3D_VOCAB
    from occ4d.data.dataset import ClipDataset
    from occ4d.data.index import load_index
    from occ4d.metrics.semantic import Occ3DMIoU
    from occ4d.models.columns import resample
    from occ4d.models.tokenizers.align import reference_index, relative_xyyaw
    from occ4d.models.tokenizers.baseline import block_mode

    ds = ClipDataset(load_index(data, split), past=frames, future=0, stride=frames, with_masks=False,
                     cache=False)
    ref = reference_index(frames)
    rows = {"middle frame, warped": Occ3DMIoU(mask="none"), "its 8x8 mode, warped": Occ3DMIoU(mask="none")}
    for i in range(len(ds)):
        item = ds[i]
        occ = item["semantics"]  # (T, X, Y, Z) uint8
        _, t_in_ref = relative_xyyaw(item["poses"][None], ref)  # (1, T, 3)
        grids = (("middle frame, warped", occ[ref].long()), ("its 8x8 mode, warped", block_mode(occ[ref], 8)))
        for name, grid in grids:
            warped = resample(grid[None].expand(frames, *grid.shape), t_in_ref[0], OCC3D_VOCAB.free)
            rows[name].update(warped.to(torch.uint8), occ)
    return {name: m.compute() for name, m in rows.items()}


def is_4d(name: str) -> bool:
    from occ4d.models.tokenizers.recipe import PRESETS

    return PRESETS[name].data.frames > 1  # a clip per latent (3D convolutions or folded frames)


def quality(args) -> None:
    runs = Path(args.runs)
    for name in args.presets:
        if args.train and final_eval(runs / name) is None:
            cmd = [sys.executable, "-m", "occ4d.cli", "train", "tokenizer", "--preset", name,
                   "--data", args.data, "--out", str(runs / name), "--run.threads", str(args.threads),
                   "--run.progress", "False"]
            subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
    dyn = ("car", "truck", "bus", "bicycle", "motorcycle", "pedestrian")
    short = {"bicycle": "bike", "motorcycle": "moto", "pedestrian": "ped"}
    head = (f"{'preset':<13}{'ratio':>7}{'mIoU':>7}{'IoU':>7}{'mIoU cam':>9}{'IoU cam':>8}"
            + "".join(f"{short.get(c, c):>6}" for c in dyn)
            + f"{'usage':>7}{'train min':>10}{'samples':>8}{'smp/s':>7}{'peak MiB':>9}")
    print(f"synthetic validation split of {args.data} (no mask = PROTOCOLS §4a; cam = camera mask §3.1); "
          "per-class columns: IoU of the dynamic classes, no mask")
    print(head)
    print("-" * len(head))
    nan = float("nan")
    for name in args.presets:
        r = final_eval(runs / name)
        if r is None:
            print(f"{name:<13} (no finished run in {runs / name})")
            continue
        cls = "".join(f"{(r.get(f'IoU_{c}') if r.get(f'IoU_{c}') is not None else nan):>6.1f}" for c in dyn)
        rate = r["samples"] / r["train_s"] if r["train_s"] else nan
        print(f"{name:<13}{r['compression']:>6.0f}x{r['mIoU']:>7.2f}{r['IoU']:>7.2f}"
              f"{r.get('mIoU_camera', nan):>9.2f}{r.get('IoU_camera', nan):>8.2f}{cls}"
              f"{r.get('codebook_usage', nan):>7.2f}"
              f"{r['train_s'] / 60:>10.1f}{r['samples']:>8}{rate:>7.2f}{r['peak_MiB']:>9.0f}")
    for factor in (4, 8):  # the hand-written codecs at the 16x and the 64x per-frame token grids
        r = pooled_baseline(Path(args.data), factor=factor)
        print(f"{f'mode {factor}x{factor}':<13}{factor * factor:>6.0f}x{r['mIoU']:>7.2f}{r['IoU']:>7.2f}"
              f"   (hand-written {factor * factor}x codec: each {factor}x{factor} block keeps its most "
              "frequent class per height)")
    if any(is_4d(name) for name in args.presets):
        print("\nheadroom of the 4D presets' 8-frame clips (no mask): one pose-aligned frame warped to "
              "every frame")
        for name, r in aligned_headroom(Path(args.data)).items():
            print(f"{name:<22}{r['mIoU']:>7.2f}{r['IoU_geometry']:>7.2f}   car {r['per_class']['car']:.1f}  "
                  f"pedestrian {r['per_class']['pedestrian']:.1f}")
    if args.others:
        print("\nthe same models on the validation split of other worlds (no memorising of one town); "
              "mIoU / IoU, and the largest mIoU gap to the training world")
        for name in args.presets:
            r = final_eval(runs / name)
            if r is None:
                continue
            figs = [other_town(runs / name, Path(w)) for w in args.others]
            cells = "  ".join(f"{Path(w).name}: {f['mIoU']:.2f} / {f['IoU']:.2f}"
                              for w, f in zip(args.others, figs, strict=True))
            gap = max(abs(f["mIoU"] - r["mIoU"]) for f in figs)
            print(f"{name:<13} {cells}  (gap {gap:.2f})")
    if args.real:
        print(f"\nreal Occ3D-nuScenes frames in {args.real}, reconstructed by models trained on synth data")
        for name in args.presets:
            if final_eval(runs / name) is None:
                continue
            fig = real_frames_figure(runs / name, Path(args.real))
            if fig:
                print(f"{name:<13} {fig['frames']} frames: mIoU {fig['mIoU']:.2f}  IoU {fig['IoU']:.2f}  "
                      f"(camera mask: mIoU {fig['mIoU_camera']:.2f}  IoU {fig['IoU_camera']:.2f})")


# (row, overrides of occ4d train tokenizer): each row adds or swaps one lever against the one it
# names, at the same sample budget. Every row states every lever, so the rows do not move when a
# preset's defaults do: the first row is the earlier recipe (plain CE, lr 2e-3, uniform crops).
_PLAIN = ["--model.class-balanced", "False", "--model.lovasz-weight", "0", "--model.crop-focus", "0",
          "--optim.lr", "2e-3", "--model.bottleneck", "vq"]
_BAL_LOV = [*_PLAIN, "--model.class-balanced", "True", "--model.lovasz-weight", "1.0"]
_BEST = [*_BAL_LOV, "--optim.lr", "4e-3", "--model.crop-focus", "0.5"]
LEVERS: list[tuple[str, list[str]]] = [
    ("plain CE (the earlier recipe)", _PLAIN),
    ("CE + Lovász", [*_PLAIN, "--model.lovasz-weight", "1.0"]),
    ("class-balanced CE", [*_PLAIN, "--model.class-balanced", "True"]),
    ("class-balanced CE + Lovász (bal+lov)", _BAL_LOV),
    ("bal+lov, lr 4e-3", [*_BAL_LOV, "--optim.lr", "4e-3"]),
    ("bal+lov, lr 4e-3, object-centred crops 0.5", _BEST),
    ("bal+lov, lr 4e-3, channels 64", [*_BAL_LOV, "--optim.lr", "4e-3", "--model.channels", "64"]),
    ("best + residual VQ depth 4", [*_BEST, "--model.bottleneck", "rvq", "--model.rvq-depth", "4"]),
    ("best, KL bottleneck (no quantizer)", [*_BEST, "--model.bottleneck", "kl", "--model.kl-weight", "1e-6"]),
]

_PEAK = ("import resource, sys; from occ4d.cli import main; main(sys.argv[1:]); "
         "print('peak_rss_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")


def ablate(args) -> None:
    runs = Path(args.runs)
    peaks: dict[str, float] = {}
    for i, (row, extra) in enumerate(LEVERS):
        run = runs / f"{args.preset}-lever{i}"
        peak_file = run / "peak_rss_kb"
        if final_eval(run) is None:
            cmd = [sys.executable, "-c", _PEAK, "train", "tokenizer", "--preset", args.preset,
                   "--data", args.data, "--out", str(run), "--optim.total-samples", str(args.samples),
                   "--optim.warmup-samples", str(min(100, args.samples // 4)), "--run.threads", "1",
                   "--run.eval-every", str(args.samples), "--run.seed", str(args.seed), *extra]
            done = subprocess.run(cmd, check=True, capture_output=True, text=True,
                                  env={**os.environ, "OMP_NUM_THREADS": "1"})
            kb = [ln.split()[1] for ln in done.stdout.splitlines() if ln.startswith("peak_rss_kb")]
            if kb:
                peak_file.write_text(kb[0])
        peaks[row] = float(peak_file.read_text()) / 1024 if peak_file.exists() else float("nan")
    head = (f"{'lever':<46}{'mIoU':>7}{'IoU':>7}{'car':>7}{'ped':>7}{'train min':>10}{'samples/s':>10}"
            f"{'peak MiB':>9}")
    print(f"{args.preset}, {args.samples} samples each, seed {args.seed}, validation split of {args.data}")
    print(head)
    print("-" * len(head))
    nan = float("nan")
    for i, (row, _) in enumerate(LEVERS):
        r = final_eval(runs / f"{args.preset}-lever{i}")
        if r is None:
            continue
        rate = r["samples"] / r["train_s"] if r["train_s"] else nan
        car, ped = r.get("IoU_car"), r.get("IoU_pedestrian")
        car, ped = (nan if v is None else v for v in (car, ped))  # None: the class is in neither
        print(f"{row:<46}{r['mIoU']:>7.2f}{r['IoU']:>7.2f}{car:>7.2f}{ped:>7.2f}{r['train_s'] / 60:>10.1f}"
              f"{rate:>10.2f}{peaks[row]:>9.0f}")


def main() -> None:
    from occ4d.models.tokenizers.recipe import PRESETS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    sp = sub.add_parser("speed")
    sp.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    sp.add_argument("--device", default="cpu")
    sp.add_argument("--time-paper", action="store_true", help="also time the paper-size presets on CPU")
    pr = sub.add_parser("precision", help="training-step time in fp32, bf16 autocast and channels_last")
    pr.add_argument("--presets", nargs="+", default=["tiny-rvq", "tiny-vae"], choices=list(PRESETS))
    pr.add_argument("--device", default="cpu")
    pr.add_argument("--repeats", type=int, default=5)
    one = sub.add_parser("one")
    one.add_argument("preset", choices=list(PRESETS))
    one.add_argument("--device", default="cpu")
    one.add_argument("--size-only", action="store_true")
    q = sub.add_parser("quality")
    q.add_argument("--data", required=True)
    q.add_argument("--runs", required=True)
    q.add_argument("--presets", nargs="+", default=list(TINY), choices=list(PRESETS))
    q.add_argument("--train", action="store_true", help="train the presets that have no finished run")
    q.add_argument("--threads", type=int, default=1)
    q.add_argument("--real", default="", help="folder of real Occ3D frames (e.g. ../shared/data)")
    q.add_argument("--others", nargs="*", default=[], help="other synthetic worlds to score each model on")
    a = sub.add_parser("ablate", help="one run per lever of LEVERS at the same budget, one row each")
    a.add_argument("--data", required=True)
    a.add_argument("--runs", required=True)
    a.add_argument("--preset", default="tiny-vqvae", choices=list(PRESETS))
    a.add_argument("--samples", type=int, default=600)
    a.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.what == "one":
        print(json.dumps(measure(args.preset, args.device, timed=not args.size_only)))
    elif args.what == "speed":
        speed(args)
    elif args.what == "precision":
        precision(args)
    elif args.what == "ablate":
        ablate(args)
    else:
        quality(args)


if __name__ == "__main__":
    main()
