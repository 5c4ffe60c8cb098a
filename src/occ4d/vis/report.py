"""Run reports: one self-contained HTML page per training run, readable offline.

A run folder (written by ``occ4d.train``) holds ``metrics.jsonl`` (one JSON object per logged
step: ``kind``, ``step``, ``samples``, ``time`` and figures), ``config.json``, checkpoints
``ckpt-<step>.json`` + ``.safetensors``, and whatever evaluations and samples were saved: metric
``*.json`` files, pictures, videos and clip files. The report shows the config, metric tables,
training curves (plotly, its script inlined once), the checkpoints, and the samples, every
picture and video embedded as a data URI and every clip file rendered as an animated top-down GIF.
Same-named clip files in ``pred/`` and ``gt/`` folders (what ``occ4d forecast --save RUN/samples``
writes) are shown as one ground truth | prediction | error GIF with each frame's mIoU, and so is
every :class:`ModelSample` the caller passes (``occ4d report`` runs the run's model for them).
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from occ4d.core.errors import DataError
from occ4d.core.grid import OCC3D, GridSpec
from occ4d.core.vocab import OCC3D_VOCAB, Vocabulary
from occ4d.io.atomic import write_text

IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif"}
VIDEO_TYPES = {".mp4": "video/mp4", ".webm": "video/webm"}
MAX_MEDIA_BYTES = 20 * 1024 * 1024  # larger files are listed, not embedded, to keep the page openable
_RESERVED = ("metrics.jsonl", "config.json")


@dataclass
class RunContents:
    """What a run folder holds, read and checked."""

    root: Path
    records: list[dict] = field(default_factory=list)
    bad_lines: list[int] = field(default_factory=list)
    config: dict | None = None
    checkpoints: list[dict] = field(default_factory=list)
    metric_files: dict[str, dict] = field(default_factory=dict)
    media: list[Path] = field(default_factory=list)
    clips: list[Path] = field(default_factory=list)
    pairs: list[tuple[Path, Path]] = field(default_factory=list)  # (ground truth, prediction) clip files


@dataclass(frozen=True)
class ModelSample:
    """A model's output beside its ground truth for the report: (T, X, Y, Z) uint8 grids.

    ``trajectory`` (T, 3) is relative to frame ``current`` (DESIGN); ``mask`` (T, X, Y, Z) bool
    restricts what the error panel and the mIoU judge (Occ3D's camera mask, PROTOCOLS §3.1).
    """

    name: str
    gt: np.ndarray
    pred: np.ndarray
    trajectory: np.ndarray | None = None
    hz: float = 2.0
    current: int = 0
    mask: np.ndarray | None = None
    vocab: Vocabulary = OCC3D_VOCAB
    grid: GridSpec = OCC3D


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(path, f"not valid JSON ({type(e).__name__}: {e})") from e


def _is_clip(path: Path) -> bool:
    try:
        with np.load(path, allow_pickle=False) as z:
            return "header" in z.files and "semantics" in z.files
    except Exception:  # not an npz we can read: simply not a clip
        return False


def read_run(run_dir: str | os.PathLike) -> RunContents:
    """Collect a run folder's logs, config, checkpoints, metric files and samples (three levels deep)."""
    root = Path(run_dir)
    if not root.is_dir():
        raise DataError(root, "run folder not found")
    run = RunContents(root)
    log = root / "metrics.jsonl"
    if log.is_file():
        for i, line in enumerate(log.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                run.bad_lines.append(i)  # a run killed mid-write leaves a partial last line
                continue
            if isinstance(rec, dict):
                run.records.append(rec)
            else:
                run.bad_lines.append(i)
    if (root / "config.json").is_file():
        run.config = _read_json(root / "config.json")
    files = sorted(p for p in [*root.glob("*"), *root.glob("*/*"), *root.glob("*/*/*")] if p.is_file())
    paired = set()
    for p in files:  # occ4d forecast --save DIR writes DIR/pred/<name>.npz and DIR/gt/<name>.npz
        gt = p.parent.parent / "gt" / p.name
        if p.parent.name == "pred" and p.suffix == ".npz" and gt.is_file() and _is_clip(p) and _is_clip(gt):
            run.pairs.append((gt, p))
            paired.update((gt, p))
    for p in files:
        if p in paired:
            continue
        rel = p.relative_to(root)
        suffix = p.suffix.lower()
        if p.name.startswith("."):
            continue
        if p.name.startswith("ckpt-") and suffix == ".json":
            state = _read_json(p)
            run.checkpoints.append({"file": str(rel), "step": state.get("step"),
                                    "samples": state.get("samples")})
        elif suffix == ".json" and str(rel) not in _RESERVED:
            value = _read_json(p)
            if isinstance(value, dict):
                run.metric_files[str(rel)] = value
        elif suffix in IMAGE_TYPES or suffix in VIDEO_TYPES:
            run.media.append(p)
        elif suffix == ".npz" and _is_clip(p):
            run.clips.append(p)
    return run


def _scalars(d: dict, prefix: str = "") -> dict[str, float | int | str]:
    """Flatten nested dicts to "a/b" keys, keeping numbers and short strings."""
    out: dict[str, float | int | str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_scalars(v, key + "/"))
        elif isinstance(v, bool) or v is None:
            out[key] = str(v)
        elif isinstance(v, (int, float)):
            out[key] = v
        elif isinstance(v, str) and len(v) <= 200:
            out[key] = v
    return out


def _fmt(v) -> str:
    if isinstance(v, float):
        return "NaN" if math.isnan(v) else f"{v:.6g}"
    return html.escape(str(v))


def table_html(values: dict, header: tuple[str, str] = ("name", "value")) -> str:
    rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{_fmt(v)}</td></tr>" for k, v in values.items())
    return f"<table><tr><th>{header[0]}</th><th>{header[1]}</th></tr>{rows}</table>"


def curve_series(records: list[dict]) -> dict[str, dict[str, tuple[list, list]]]:
    """figure name -> kind ("train"/"eval") -> (samples, values), for every numeric logged figure."""
    series: dict[str, dict[str, tuple[list, list]]] = {}
    for rec in records:
        kind = str(rec.get("kind", "train"))
        x = rec.get("samples", rec.get("step"))
        if not isinstance(x, (int, float)):
            continue
        for k, v in rec.items():
            if k in ("kind", "step", "samples", "time") or isinstance(v, bool):
                continue
            if not isinstance(v, (int, float)):
                continue
            xs, ys = series.setdefault(k, {}).setdefault(kind, ([], []))
            xs.append(x)
            ys.append(v)
    return series


def curves_html(records: list[dict]) -> list[str]:
    """One plotly chart (an HTML div, script not included) per logged figure."""
    import plotly.graph_objects as go

    divs = []
    for i, (name, kinds) in enumerate(sorted(curve_series(records).items())):
        fig = go.Figure()
        for kind, (xs, ys) in sorted(kinds.items()):
            mode = "lines+markers" if len(xs) < 30 else "lines"
            fig.add_trace(go.Scatter(x=xs, y=ys, mode=mode, name=kind))
        fig.update_layout(title=name, xaxis_title="samples seen", height=320,
                          margin=dict(l=50, r=20, t=40, b=40), template="plotly_white")
        divs.append(fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"curve-{i}"))
    return divs


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def media_html(path: Path, root: Path) -> str:
    rel = html.escape(str(path.relative_to(root)))
    size = path.stat().st_size
    if size > MAX_MEDIA_BYTES:
        return f"<figure><figcaption>{rel} ({size / 2**20:.1f} MB, too large to embed)</figcaption></figure>"
    suffix = path.suffix.lower()
    uri = data_uri(path.read_bytes(), IMAGE_TYPES.get(suffix) or VIDEO_TYPES[suffix])
    if suffix in VIDEO_TYPES:
        body = f'<video controls loop muted src="{uri}"></video>'
    else:
        body = f'<img alt="{rel}" src="{uri}">'
    return f"<figure>{body}<figcaption>{rel}</figcaption></figure>"


def clip_html(path: Path, root: Path, scale: int = 2) -> str:
    """A clip file as an animated top-down GIF (ego path and time drawn) embedded in a figure."""
    from occ4d.io.clipfile import load_clip
    from occ4d.vis.video import clip_frames, gif_bytes

    c = load_clip(path)
    frames = clip_frames(c.semantics, c.vocab, c.grid, c.trajectory, c.hz, c.current, "topdown", scale=scale)
    uri = data_uri(gif_bytes(frames, c.hz), "image/gif")
    rel = html.escape(str(path.relative_to(root)))
    caption = f"{rel} ({len(c)} frames, {c.hz:g} Hz)"
    return f'<figure><img alt="{rel}" src="{uri}"><figcaption>{caption}</figcaption></figure>'


def sample_html(sample: ModelSample, scale: int = 2) -> str:
    """A model sample as a figure: a GT | prediction | error picture (one frame) or GIF (a clip),
    each frame captioned with its mIoU, and the clip's mean frame mIoU in the caption."""
    from occ4d.vis.compare import compare_image, frame_miou
    from occ4d.vis.topdown import png_bytes
    from occ4d.vis.video import clip_frames, gif_bytes

    gt, pred = np.asarray(sample.gt), np.asarray(sample.pred)
    if gt.shape != pred.shape or gt.ndim != 4:
        raise ValueError(f"sample {sample.name!r}: ground truth {gt.shape} and prediction {pred.shape} "
                         "must be equal (T, X, Y, Z) clips")
    masks = [None] * len(gt) if sample.mask is None else list(np.asarray(sample.mask).astype(bool))
    mious = [frame_miou(g, p, sample.vocab, sample.grid, m) for g, p, m in zip(gt, pred, masks, strict=True)]
    if len(gt) == 1:
        pic = compare_image(gt[0], pred[0], sample.vocab, sample.grid, masks[0], scale=scale,
                            title=sample.name)
        uri = data_uri(png_bytes(pic), "image/png")
    else:
        frames = clip_frames(pred, sample.vocab, sample.grid, sample.trajectory, sample.hz, sample.current,
                             scale=scale, gt=gt, mask=sample.mask, title=sample.name)
        uri = data_uri(gif_bytes(frames, sample.hz), "image/gif")
    shown = [m for m in mious if not math.isnan(m)]
    mean = f"{np.mean(shown):.2f} %" if shown else "n/a"
    name = html.escape(sample.name)
    caption = f"{name} ({len(gt)} frame{'s' if len(gt) > 1 else ''}, mean frame mIoU {mean})"
    return f'<figure><img alt="{name}" src="{uri}"><figcaption>{caption}</figcaption></figure>'


def pair_sample(gt_path: Path, pred_path: Path, root: Path) -> ModelSample:
    """A ground-truth and a prediction clip file of the same window as a :class:`ModelSample`."""
    from occ4d.io.clipfile import load_clip

    gt, pred = load_clip(gt_path), load_clip(pred_path)
    if gt.semantics.shape != pred.semantics.shape:
        raise DataError(pred_path, f"clip {pred.semantics.shape} differs from its ground truth "
                                   f"{gt_path} {gt.semantics.shape}")
    return ModelSample(str(pred_path.relative_to(root)), gt.semantics, pred.semantics, gt.trajectory.xyyaw,
                       gt.hz, gt.current, gt.mask_camera, gt.vocab, gt.grid)


_STYLE = """
body { font: 14px/1.45 sans-serif; margin: 24px auto; max-width: 1200px; color: #222; padding: 0 16px; }
h1 { font-size: 22px; }
h2 { font-size: 18px; border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 28px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; } th { background: #f3f3f3; }
td:nth-child(2) { font-family: monospace; }
.curves { display: grid; grid-template-columns: repeat(auto-fill, minmax(480px, 1fr)); gap: 8px; }
.media { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; } figure img, figure video { max-width: 560px; display: block; }
figcaption { font-size: 12px; color: #555; } .note { color: #a40; }
"""


def build_report(run_dir: str | os.PathLike, max_media: int = 12, max_clips: int = 4,
                 title: str | None = None, samples: Sequence[ModelSample] = (),
                 notes: Sequence[str] = ()) -> str:
    """The report page of a run folder as one HTML string (see the module docstring).

    ``samples`` are shown first under "Samples"; ``notes`` are remarks printed with them (for
    example why no model sample could be made).
    """
    import plotly.offline

    run = read_run(run_dir)
    name = title or run.root.resolve().name
    parts = [f"<h1>Run report: {html.escape(name)}</h1>",
             f"<p>folder <code>{html.escape(str(run.root))}</code>"]
    if run.records:
        last = {k: max((r.get(k) for r in run.records if isinstance(r.get(k), (int, float))), default=None)
                for k in ("step", "samples")}
        parts.append(f" | {len(run.records)} log records, last step {last['step']}, "
                     f"{last['samples']} samples")
    parts.append("</p>")
    if run.bad_lines:
        parts.append(f'<p class="note">metrics.jsonl: skipped unreadable line(s) {run.bad_lines[:20]}</p>')

    parts.append("<h2>Metrics</h2>")
    evals = [r for r in run.records if r.get("kind") == "eval"]
    trains = [r for r in run.records if r.get("kind", "train") == "train"]
    for label, recs in (("last evaluation", evals), ("last training log", trains)):
        if recs:
            rec = recs[-1]
            shown = {k: v for k, v in rec.items() if k not in ("kind", "time")}
            parts.append(f"<h3>{label} (step {rec.get('step')})</h3>" + table_html(_scalars(shown)))
    for fname, values in run.metric_files.items():
        parts.append(f"<h3>{html.escape(fname)}</h3>" + table_html(_scalars(values)))
    if not evals and not trains and not run.metric_files:
        parts.append("<p>no metrics were logged in this run folder.</p>")

    divs = curves_html(run.records) if run.records else []
    if divs:
        parts.append("<h2>Training curves</h2><div class='curves'>" + "".join(divs) + "</div>")

    if run.media or run.clips or run.pairs or samples or notes:
        parts.append("<h2>Samples</h2>")
        parts.extend(f'<p class="note">{html.escape(n)}</p>' for n in notes)
        parts.append("<div class='media'>")
        parts.extend(sample_html(s) for s in samples)
        parts.extend(sample_html(pair_sample(g, p, run.root)) for g, p in run.pairs[:max_clips])
        parts.extend(media_html(p, run.root) for p in run.media[:max_media])
        parts.extend(clip_html(p, run.root) for p in run.clips[:max_clips])
        parts.append("</div>")
        skipped = (max(len(run.media) - max_media, 0) + max(len(run.clips) - max_clips, 0)
                   + max(len(run.pairs) - max_clips, 0))
        if skipped:
            parts.append(f'<p class="note">{skipped} more sample file(s) not shown.</p>')

    if run.checkpoints:
        parts.append("<h2>Checkpoints</h2><table><tr><th>file</th><th>step</th><th>samples</th></tr>")
        parts.extend(f"<tr><td>{html.escape(c['file'])}</td><td>{_fmt(c['step'])}</td>"
                     f"<td>{_fmt(c['samples'])}</td></tr>" for c in run.checkpoints)
        parts.append("</table>")
    if run.config is not None:
        cfg = html.escape(json.dumps(run.config, indent=2))
        parts.append(f"<h2>Configuration</h2><details><summary>config.json</summary><pre>{cfg}</pre></details>")

    script = f"<script>{plotly.offline.get_plotlyjs()}</script>" if divs else ""
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">'
            f"<title>{html.escape(name)}</title><style>{_STYLE}</style>{script}</head>"
            f"<body>{''.join(parts)}</body></html>")


def save_report(path: str | os.PathLike, run_dir: str | os.PathLike, **kwargs) -> None:
    """Write :func:`build_report` to ``path`` atomically."""
    write_text(path, build_report(run_dir, **kwargs))
