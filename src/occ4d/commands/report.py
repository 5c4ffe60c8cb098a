"""``occ4d report RUN_DIR --out report.html``: one offline HTML page summarising a training run.

Besides what the run folder holds (``occ4d.vis.report``), the report shows samples of the run's
model on its data: the latest checkpoint reconstructs (tokenizers) or forecasts (forecasting
world models) the first ``--samples`` windows of ``--split``, drawn as ground truth | prediction
| error with each frame's mIoU. The data folder is ``--data``, or the one the run trained on.
"""

from __future__ import annotations

from pathlib import Path

from tyro.conf import Positional

FORECAST_KINDS = ("forecaster", "refiner", "autoregressive")


def report(run_dir: Positional[Path], out: Path = Path("report.html"), max_media: int = 12,
           max_clips: int = 4, title: str | None = None, data: Path | None = None, samples: int = 2,
           split: str = "val", seed: int = 0, device: str = "cpu") -> None:
    """Write a run report: metric tables, training curves, samples (the model's and the files'), checkpoints.

    Everything is embedded (plotly's script, pictures and videos as data URIs), so the page opens
    from disk without a network.

    Args:
        run_dir: the run folder (metrics.jsonl, config.json, checkpoints, samples).
        out: the HTML file to write.
        max_media: at most this many pictures and videos are embedded.
        max_clips: at most this many clip files (and prediction / ground-truth pairs) are rendered
            as animated top-down GIFs.
        title: page title (default: the run folder's name).
        data: dataset folder for the model's samples (default: the one in the run's config).
        samples: how many windows of ``split`` the model reconstructs or forecasts for the report
            (0: none).
        split: the split the samples come from.
        seed: seed of the forecast sampler (window i uses seed + i, as ``occ4d forecast``).
        device: cpu or cuda.
    """
    from occ4d.core.errors import DataError, check_counts
    from occ4d.vis.report import save_report

    check_counts(0, samples=samples, max_media=max_media, max_clips=max_clips)
    try:
        found, notes = model_samples(run_dir, data, samples, split, seed, device)
        save_report(out, run_dir, max_media=max_media, max_clips=max_clips, title=title, samples=found,
                    notes=notes)
    except DataError as e:
        raise SystemExit(f"error: {e}") from e
    print(f"wrote {out}" + (f" ({len(found)} model sample(s))" if found else ""))
    for note in notes:
        print(f"note: {note}")


def model_samples(run_dir: Path, data: Path | None, count: int, split: str, seed: int = 0,
                  device: str = "cpu") -> tuple[list, list[str]]:
    """(ModelSamples, notes) of the run's latest checkpoint on ``count`` windows of ``split``.

    Runs without a checkpoint, or of a kind the report cannot sample, give notes instead.
    """
    import json

    from occ4d.core.errors import DataError
    from occ4d.train.checkpoint import latest_checkpoint

    latest = latest_checkpoint(run_dir) if count > 0 else None
    if latest is None:
        return [], []
    try:
        config = json.loads(latest.read_text(encoding="utf-8"))["config"]
    except (OSError, KeyError, TypeError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(latest, f"cannot read the run's config ({type(e).__name__}: {e})") from e
    name, kind = config.get("model_name", "?"), config.get("model", {}).get("kind", "")
    root = data if data is not None else Path(config.get("data", {}).get("root", ""))
    if not str(root) or not root.exists():
        return [], [f"no model samples: the run's data folder {str(root)!r} is not here; pass --data DIR"]
    if name == "tokenizer":
        return tokenizer_samples(run_dir, root, count, split, device), []
    if name == "worldmodel" and kind in FORECAST_KINDS:
        from occ4d.models.world.forecasting import load_forecaster

        model, past, future, _ = load_forecaster(str(run_dir), device=device)
        return forecast_samples(model, root, count, split, past, future, seed, device), []
    return [], [f"no model samples: the report samples tokenizers and forecasting world models, not "
                f"{name} {kind}".rstrip() + " runs"]


def tokenizer_samples(run_dir: Path, root: Path, count: int, split: str, device: str = "cpu") -> list:
    """The first ``count`` clips of ``split`` and the tokenizer's reconstructions of them."""
    from dataclasses import replace

    import torch

    from occ4d.train.registry import get_spec, load_model
    from occ4d.vis.report import ModelSample

    model, cfg, state = load_model(run_dir, device=device)
    ds = get_spec("tokenizer").dataset(replace(cfg, data=replace(cfg.data, root=str(root))), split)
    out = []
    with torch.no_grad():
        for i in range(min(count, len(ds))):
            item = ds[i]
            occ = item["semantics"][None].to(device)  # (1, T, X, Y, Z)
            poses = item["poses"][None].to(device) if model.config.align_poses else None
            pred = model.reconstruct(occ, poses)[0].cpu().numpy()
            mask = item.get("mask_camera")
            out.append(ModelSample(f"{split} {item['scene']} {item['tokens'][0]}: reconstruction at step "
                                   f"{state.get('step')}", item["semantics"].numpy(), pred,
                                   item["trajectory"].numpy().astype(float), ds.hz, ds.past - 1,
                                   None if mask is None else mask.numpy().astype(bool)))
    return out


def forecast_samples(model, root: Path, count: int, split: str, past: int, future: int, seed: int = 0,
                     device: str = "cpu") -> list:
    """Forecasts of the first ``count`` windows of ``split`` (``past`` history frames given)."""
    import tempfile
    from dataclasses import replace

    import torch

    from occ4d.core.errors import DataError
    from occ4d.data.dataset import ClipDataset
    from occ4d.data.index import load_index
    from occ4d.models.world.forecasting import run_forecast
    from occ4d.vis.report import pair_sample

    records = load_index(root, split)
    ds = ClipDataset(records, past=past, future=future, stride=past + future, with_masks=False)
    if len(ds) == 0:
        raise DataError(root, f"split {split!r} has no window of {past + future} consecutive frames")
    with tempfile.TemporaryDirectory(prefix="occ4d-report-") as tmp, torch.no_grad():
        run_forecast(model, ds, past=past, future=future, seed=seed, max_windows=count, device=device,
                     save=tmp)
        files = sorted((Path(tmp) / "pred").glob("*.npz"))
        return [replace(pair_sample(Path(tmp) / "gt" / p.name, p, Path(tmp)),
                        name=f"{split} {p.stem}: forecast of {future} frames from {past}") for p in files]
