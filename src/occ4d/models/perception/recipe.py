"""Camera-to-occupancy perception as a trainable model: presets, data, loss step and evaluation.

Presets (plain data): ``tiny`` trains on the synthetic world's cameras on CPU (3000 samples at
batch 1) and predicts a residual over the per-voxel class prior of the training split, which
:func:`fit` counts when a run starts (occ4d.models.perception.prior), learns from the rendered
image semantics, lifts their class probabilities into the BEV and predicts occupancy flow;
``tiny-4d`` adds one ego-warped past frame at the same training time; ``r50`` is BEVDetOcc /
FlashOcc's ResNet-50 design at 704 x 256 for GPUs
(200 x 200 BEV, 88 depth bins of 0.5 m from 1 m); ``r50-4d`` adds one past frame (BEVDet4D) and
``r50-4d-flow`` the flow head and image-semantics loss.
Evaluation scores the validation split with the Occ3D devkit mIoU under the camera mask
(PROTOCOLS §3.1) and RayIoU (§3.7, origins from each scene's poses), and reports FPS as
OccStudio does (batch 1, model forward only, data loading excluded). A trained model's
predictions as a forecaster's history: :mod:`occ4d.models.perception.perceived`.
"""

from __future__ import annotations

import dataclasses
import resource
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from occ4d.core.errors import DataError
from occ4d.core.vocab import OCC3D_VOCAB
from occ4d.data.camera_dataset import CameraDataset, collate_views
from occ4d.models.perception import CameraOccupancy, PerceptionConfig, perception_loss
from occ4d.train.config import DataConfig, OptimConfig, Preset, TrainConfig
from occ4d.train.registry import ModelSpec

_R50 = dict(image_size=(704, 256), resize_range=(0.94, 1.11), crop_jitter=1.0, block="bottleneck",
            layers=(3, 4, 6, 3), widths=(64, 128, 256, 512), fpn_channels=256, feature_stride=16,
            depth_bins=88, depth_min=1.0, depth_max=45.0, context_channels=64, bev_stride=1,
            bev_channels=(128, 256, 512), head_channels=256)
_R50_OPTIM = OptimConfig(lr=1e-4, weight_decay=1e-2, total_samples=28_130 * 24, warmup_samples=200 * 8,
                         grad_clip=5.0, ema_decay=0.9999)

_TINY = PerceptionConfig(image_size=(256, 128), resize_range=(0.94, 1.08), crop_jitter=0.5, block="basic",
                         layers=(1, 1, 1, 1), widths=(32, 64, 128, 256), fpn_channels=64, feature_stride=8,
                         depth_bins=44, context_channels=32, bev_stride=2, bev_channels=(64, 128),
                         head_channels=32, class_prior=True, seg_weight=1.0, lift_semantics=True,
                         flow_head=True)
_TINY_OPTIM = OptimConfig(lr=2e-3, total_samples=3000, warmup_samples=50, ema_decay=0.995)

PRESETS: dict[str, Preset] = {
    # CPU: 3000 samples at batch 1 (36 min on one thread beside another job); adds image semantics
    # supervision and lifting, the flow head and a 100x100 BEV at 0.8 m to the earlier 320-sample recipe.
    "tiny": Preset(_TINY, DataConfig(batch_size=1), _TINY_OPTIM,
                   note="ResNet-10-ish at 256x128, stride-8 LSS, 100x100 BEV at 0.8 m, channel-to-height x2 "
                        "over the per-voxel class prior, image-semantics loss lifted into the BEV, "
                        "column flow head"),
    "tiny-4d": Preset(dataclasses.replace(_TINY, history=1), DataConfig(batch_size=1),
                      dataclasses.replace(_TINY_OPTIM, total_samples=2600),
                      note="tiny with one ego-warped past BEV frame (BEVDet4D) at tiny's training time"),
    "r50": Preset(PerceptionConfig(**_R50), DataConfig(batch_size=4), _R50_OPTIM,
                  note="BEVDetOcc / FlashOcc R50: 704x256, 88 depth bins, 200x200 BEV, channel-to-height"),
    "r50-4d": Preset(PerceptionConfig(**_R50, history=1), DataConfig(batch_size=4), _R50_OPTIM,
                     note="r50 with one ego-warped past BEV frame (BEVDet4D fusion)"),
    "r50-4d-flow": Preset(PerceptionConfig(**_R50, history=1, seg_weight=1.0, flow_head=True),
                          DataConfig(batch_size=4), _R50_OPTIM,
                          note="r50-4d with the column flow head and the image-semantics loss "
                               "(occupancy + flow, as ALOcc-Flow / OpenOcc v2)"),
}


def build(cfg: PerceptionConfig) -> nn.Module:
    return CameraOccupancy(cfg)


def dataset(cfg: TrainConfig, split: str) -> Dataset:
    """Keyframes of ``split`` under ``cfg.data.root`` with their camera images; training items
    are augmented with a generator seeded by (run seed, item index)."""
    from occ4d.data.index import load_index

    records = load_index(cfg.data.root, split)
    if not records:
        raise DataError(cfg.data.root, f"no frames in split {split!r}")
    m: PerceptionConfig = cfg.model
    train = split == cfg.data.train_split
    return CameraDataset(records, data_root(cfg.data.root), m.image_size, history=m.history, train=train,
                         seed=cfg.run.seed, resize_range=m.resize_range, crop_jitter=m.crop_jitter,
                         with_flow=m.flow_head and train)


def data_root(source: str | Path) -> Path:
    """The folder a data source names: itself, or the folder of an info file (camera paths are
    relative to it)."""
    p = Path(source)
    return p.parent if p.is_file() else p


def loss(model: nn.Module, batch: dict, cfg: TrainConfig) -> tuple[torch.Tensor, dict[str, float]]:
    return perception_loss(model, batch, cfg.model)


def _origins(data: CameraDataset) -> dict[str, np.ndarray]:
    """RayIoU origins of every keyframe, from the poses of its whole scene in time order."""
    from occ4d.metrics import origins_by_token

    return origins_by_token({id(r): r for frames in data.frames for r in frames}.values())


def perception_scores(model: nn.Module, data: Dataset, cfg: TrainConfig, device: torch.device,
                      rays: bool = True, save: Path | None = None
                      ) -> tuple[dict[str, float], dict[str, dict]]:
    """(summary figures, full metric results) of predicting ``data``.

    Every process scores items rank, rank + world, ... once; the accumulators sum over
    processes. ``save`` writes each prediction as ``SAVE/<token>.npz`` (key ``arr_0``, the CVPR
    2023 submission format) for ``occ4d eval occ|ray``. With a flow head and OpenOcc v2 labels
    beside the data's Occ3D ones (``occ4d synth`` writes both), the occupancy flow is scored too:
    RayIoU, mAVE and Occ Score on OpenOcc v2 (the predicted Occ3D classes relabelled through the
    one mapping table), in both official mAVE variants; ``save`` then also writes
    ``SAVE/openocc_v2/<scene>/<token>/labels.npz`` (``semantics``, ``flow``) for ``occ4d eval flow``.
    """
    from occ4d.io.atomic import save_npz
    from occ4d.metrics import Occ3DMIoU, RayIoU
    from occ4d.metrics.reduce import all_reduce_sum
    from occ4d.train import distributed as dist

    net: CameraOccupancy = model.module if hasattr(model, "module") else model  # type: ignore[assignment]
    n = len(data) if not cfg.data.max_val_samples else min(len(data), cfg.data.max_val_samples)
    indices = list(range(dist.rank(), n, dist.world_size()))
    loader = DataLoader(torch.utils.data.Subset(data, indices), batch_size=1,
                        num_workers=cfg.data.num_workers, collate_fn=collate_views)
    miou = Occ3DMIoU(mask="camera")
    ray = RayIoU(backend="auto") if rays else None
    origins = _origins(data) if rays and isinstance(data, CameraDataset) else {}
    flow = FlowScores(data) if rays and net.config.flow_head and isinstance(data, CameraDataset) else None
    seconds = torch.zeros(2, dtype=torch.float64, device=device)  # (model time, frames)
    for batch in loader:
        inputs = [batch[k].to(device) for k in ("images", "intrinsics", "sensor2ego", "past2current")]
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        if flow is not None:
            pred, pred_flow = net.predict_flow(*inputs)  # (1, X, Y, Z) uint8, (1, X, Y, Z, 2)
        else:
            pred = net.predict(*inputs)  # (1, X, Y, Z) uint8
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds += torch.tensor([time.perf_counter() - t0, 1.0], dtype=torch.float64, device=device)
        gt = batch["semantics"].to(device)
        token = batch["token"][0]
        miou.update(pred, gt, mask_camera=batch["mask_camera"].to(device), source=token)
        if ray is not None:
            ray.update(pred[0], gt[0], origins[token], source=token)
        if flow is not None:
            flow.update(int(batch["index"][0]), pred[0], pred_flow[0], origins[token], save)
        if save is not None:
            save_npz(Path(save) / f"{token}.npz", True, pred[0].cpu().numpy())
    full = {"camera": miou.compute()}
    out = {"mIoU": full["camera"]["mIoU"], "IoU": full["camera"]["IoU_geometry"],
           "frames": float(full["camera"]["samples"])}
    if ray is not None:
        full["ray"] = ray.compute()
        out.update({"RayIoU": 100 * full["ray"]["RayIoU"], "RayIoU@1": 100 * full["ray"]["RayIoU@1"],
                    "RayIoU@2": 100 * full["ray"]["RayIoU@2"], "RayIoU@4": 100 * full["ray"]["RayIoU@4"]})
    if flow is not None and flow.active:
        full.update(flow.compute())
        f, a = full["flow"], full["flow_all"]
        out.update({"flow_RayIoU": 100 * f["RayIoU"], "mAVE": f["mAVE"], "OccScore": 100 * f["OccScore"],
                    "mAVE_all": a["mAVE"], "OccScore_all": 100 * a["OccScore"]})
    seconds = all_reduce_sum(seconds)
    out["fps"] = float(seconds[1] / seconds[0].clamp_min(1e-9))  # per process
    return out, full


class FlowScores:
    """Occupancy flow of a perception model on OpenOcc v2 (PROTOCOLS §3.8): the ``tp@2m`` and
    ``all-valid-rays`` mAVE variants side by side. Inactive (scores nothing) when the data has
    no OpenOcc v2 twins of its Occ3D labels."""

    def __init__(self, data: CameraDataset):
        from occ4d.data.index import openocc_twins
        from occ4d.metrics.flow import RayFlowMetric

        records = [frames[-1] for frames in data.frames]
        self.twins = openocc_twins(records)
        self.active = self.twins is not None
        self.metrics = {"flow": RayFlowMetric(mave="tp@2m"), "flow_all": RayFlowMetric(mave="all-valid-rays")}

    def update(self, index: int, pred, pred_flow, origins, save: Path | None = None) -> None:
        if not self.active:
            return
        from occ4d.data.index import load_frame

        twin = self.twins[index]
        gt = load_frame(twin)
        if gt.flow is None:
            raise DataError(twin.path, "OpenOcc v2 labels without a 'flow' array")
        from occ4d.core.frame import Frame
        from occ4d.io.convert import convert_frame

        # the one mapping table; Occ3D "others", which OpenOcc lacks, becomes free as synth writes it
        occ3d = Frame(semantics=pred.cpu().numpy(), flow=pred_flow.cpu().numpy())
        pred_frame, _ = convert_frame(occ3d, "openocc")
        for metric in self.metrics.values():
            metric.update(pred_frame.semantics, gt.semantics, origins, pred_frame.flow, gt.flow,
                          source=str(twin.path))
        if save is not None:
            from occ4d.io.openocc import save_openocc

            parts = Path(twin.path).parts
            save_openocc(Path(save) / "openocc_v2" / parts[-3] / parts[-2] / "labels.npz", pred_frame)

    def compute(self) -> dict[str, dict]:
        return {k: m.compute() for k, m in self.metrics.items()}


def evaluate(model: nn.Module, data: Dataset, cfg: TrainConfig, device: torch.device) -> dict[str, float]:
    """mIoU (camera mask), geometry IoU, RayIoU and FPS on the validation split."""
    return perception_scores(model, data, cfg, device)[0]


def model_cost(model: CameraOccupancy, sample: dict, device: torch.device, train_step: bool = True) -> dict:
    """OccStudio-style cost of one batch-1 sample: forward GFLOPs (torch.utils.flop_counter),
    parameters (M), and peak memory in GiB of inference and of a training step (CUDA: allocator
    peak; CPU: the process's peak resident set, which includes everything else loaded)."""
    from torch.utils.flop_counter import FlopCounterMode

    inputs = [sample[k][None].to(device) for k in ("images", "intrinsics", "sensor2ego", "past2current")]
    out = {"params_M": sum(p.numel() for p in model.parameters()) / 1e6}
    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(*inputs)
    out["GFLOPs"] = counter.get_total_flops() / 1e9

    def peak() -> float:
        if device.type == "cuda":
            return torch.cuda.max_memory_allocated(device) / 2**30
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB -> GiB

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with torch.no_grad():
        model(*inputs)
    out["infer_mem_GiB"] = peak()
    if train_step:
        model.train()
        batch = {k: (v[None].to(device) if torch.is_tensor(v) else v) for k, v in sample.items()}
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        loss_value, _ = perception_loss(model, batch, model.config)
        loss_value.backward()
        model.zero_grad(set_to_none=True)
        out["train_mem_GiB"] = peak()
        model.eval()
    return out


def split_counts(records, num_classes: int = OCC3D_VOCAB.num_classes) -> np.ndarray:
    """(K, X, Y, Z) per-voxel class counts over the label grids of ``records`` (a training split)."""
    from occ4d.data.index import load_frame
    from occ4d.models.perception.prior import class_counts

    records = list(records)
    if not records:
        raise ValueError("no records to count")
    return class_counts((load_frame(r).semantics for r in records), num_classes)


def most_frequent_grid(records, vocab=OCC3D_VOCAB) -> np.ndarray:
    """The per-voxel most frequent class over ``records`` (a training split): the baseline a
    camera model must beat, since it already knows where road and free space usually are."""
    from occ4d.models.perception.prior import most_frequent

    return most_frequent(split_counts(records, vocab.num_classes))


class FixedGrid(nn.Module):
    """A stand-in model that predicts the same grid for every keyframe, with zero flow: the
    per-voxel most-frequent-class baseline (``most_frequent_grid``) scored by the same code as a
    camera model (:func:`perception_scores`)."""

    def __init__(self, grid: np.ndarray, config: PerceptionConfig):
        super().__init__()
        self.config = config
        self.register_buffer("grid", torch.from_numpy(np.asarray(grid, np.uint8)), persistent=False)

    def predict(self, images: torch.Tensor, *args) -> torch.Tensor:
        return self.grid.expand(images.shape[0], *self.grid.shape)

    def predict_flow(self, images: torch.Tensor, *args) -> tuple[torch.Tensor, torch.Tensor]:
        labels = self.predict(images)
        return labels, torch.zeros(*labels.shape, 2, device=labels.device)


def fit(model: nn.Module, data: Dataset, cfg: TrainConfig) -> None:
    """At a fresh run's start: the class prior from the training split's labels (all voxels, as
    the most-frequent-class baseline counts them), when the config asks for one."""
    from occ4d.models.perception.prior import log_prior
    from occ4d.train import distributed as dist

    m: PerceptionConfig = cfg.model
    if not m.class_prior:
        return
    if not isinstance(data, CameraDataset):
        raise TypeError(f"the class prior is counted on a CameraDataset, got {type(data).__name__}")
    net: CameraOccupancy = model.module if hasattr(model, "module") else model  # type: ignore[assignment]
    records = [frames[-1] for frames in data.frames]
    net.set_prior(log_prior(split_counts(records, m.num_classes), m.prior_smoothing))
    dist.print0(f"class prior: per-voxel class frequencies of {len(records)} training keyframes")


def _mean_percent(values) -> str:
    v = [x for x in values if not np.isnan(x)]
    return f"{100 * sum(v) / len(v):.2f}" if v else "nan"


def eval_command(ckpt: Path, data: Path, split: str | None = None, device: str = "cpu", ema: bool = True,
                 max_samples: int = 0, rays: bool = True, save: Path | None = None
                 ) -> tuple[dict, list[list]]:
    """``occ4d eval perception``: predict a split from its cameras and score it; also the cost.

    Returns (results with ``protocol``, per-class rows [class, IoU camera mask, RayIoU])."""
    from occ4d.train.registry import load_model

    model, cfg, state = load_model(ckpt, ema=ema, device=device)
    if cfg.model_name != "perception":
        raise DataError(ckpt, f"checkpoint is a {cfg.model_name!r} model, not a perception model")
    val_split = split or cfg.data.val_split
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, root=str(data), val_split=val_split,
                                                            max_val_samples=max_samples))
    data_set = dataset(cfg, val_split)
    dev = torch.device(device)
    summary, full = perception_scores(model, data_set, cfg, dev, rays=rays, save=save)
    cost = model_cost(model, data_set[0], dev, train_step=False)
    cam, ray = full["camera"], full.get("ray")
    rows = [[name, f"{iou:.2f}", _mean_percent(ray["per_class"][name].values()) if ray else "-"]
            for name, iou in cam["per_class"].items()]
    protocol = f"perception/{cam['protocol']}" + (f" + {ray['protocol']}" if ray else "")
    flow = {}
    if "flow" in full:
        f, a = full["flow"], full["flow_all"]
        protocol += f" + openocc-v2 flow {f['protocol']} and {a['protocol']}"
        flow = {"per_class_AVE": f["per_class_AVE"], "per_class_AVE_all": a["per_class_AVE"]}
    results = {"protocol": protocol, **summary, **cost, "preset": cfg.preset, "step": state["step"],
               "weights": "ema" if ema else "model", "split": val_split, "per_class": cam["per_class"],
               "per_class_ray": ray["per_class"] if ray else None, **flow}
    return results, rows


SPEC = ModelSpec(name="perception", config_type=PerceptionConfig, presets=PRESETS, build=build,
                 dataset=dataset, loss=loss, evaluate=evaluate, collate=collate_views, fit=fit)
