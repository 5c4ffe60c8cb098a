"""Ground truth | prediction | error panels with the frame's mIoU, and time strips of clips.

A voxel is *correct* when ground truth and prediction agree on a non-free class, *wrong* when they
differ (a wrong class, a miss or a false alarm), and not shown when both are free. With a mask
(Occ3D evaluates inside ``mask_camera``, PROTOCOLS §3.1) only voxels inside it are judged, which
is also what the caption's mIoU counts.
"""

from __future__ import annotations

import numpy as np

from occ4d.core.grid import OCC3D, GridSpec
from occ4d.core.vocab import OCC3D_VOCAB, Vocabulary
from occ4d.vis.layout import draw_ego, draw_path, hstack, text_bar, titled, vstack
from occ4d.vis.topdown import BACKGROUND, grid_to_image, topdown_rgb, upscale

NONE, CORRECT, WRONG = 0, 1, 2
ERROR_COLOURS = {CORRECT: (143, 209, 143), WRONG: (255, 48, 48)}


def _check_pair(gt: np.ndarray, pred: np.ndarray, mask: np.ndarray | None) -> tuple:
    gt, pred = np.asarray(gt), np.asarray(pred)
    if gt.shape != pred.shape or gt.ndim != 3:
        raise ValueError(f"ground truth and prediction must be equal (X, Y, Z) grids, "
                         f"got {gt.shape} and {pred.shape}")
    if mask is not None:
        mask = np.asarray(mask).astype(bool)  # stored masks are uint8 (PROTOCOLS §5)
        if mask.shape != gt.shape:
            raise ValueError(f"mask must have shape {gt.shape}, got {mask.shape}")
    return gt, pred, mask


def error_grid(gt: np.ndarray, pred: np.ndarray, vocab: Vocabulary = OCC3D_VOCAB,
               mask: np.ndarray | None = None) -> np.ndarray:
    """Per voxel NONE / CORRECT / WRONG as uint8 (X, Y, Z); outside ``mask`` everything is NONE."""
    gt, pred, mask = _check_pair(gt, pred, mask)
    out = np.full(gt.shape, NONE, np.uint8)
    relevant = (gt != vocab.free) | (pred != vocab.free)
    if mask is not None:
        relevant &= mask
    out[relevant & (gt == pred)] = CORRECT
    out[relevant & (gt != pred)] = WRONG
    return out


def error_topdown(gt: np.ndarray, pred: np.ndarray, vocab: Vocabulary = OCC3D_VOCAB,
                  mask: np.ndarray | None = None,
                  background: tuple[int, int, int] = BACKGROUND) -> np.ndarray:
    """Top-down error image (H=X, W=Y, 3): a column is red if any voxel in it is wrong, green if it
    holds correct voxels only, background otherwise (orientation as ``topdown_rgb``)."""
    err = error_grid(gt, pred, vocab, mask)
    wrong = (err == WRONG).any(axis=2)
    correct = (err == CORRECT).any(axis=2) & ~wrong
    rgb = np.empty((*err.shape[:2], 3), np.uint8)
    rgb[:] = background
    rgb[correct] = ERROR_COLOURS[CORRECT]
    rgb[wrong] = ERROR_COLOURS[WRONG]
    return grid_to_image(rgb)


def frame_miou(gt: np.ndarray, pred: np.ndarray, vocab: Vocabulary = OCC3D_VOCAB, grid: GridSpec = OCC3D,
               mask: np.ndarray | None = None) -> float:
    """The Occ3D mIoU (percent) of one frame, inside ``mask`` when given (occ4d.metrics, §3.1).

    Classes absent from both grids are NaN and skipped, as the devkit does; NaN when none is left.
    """
    from occ4d.metrics.semantic import Occ3DMIoU

    metric = Occ3DMIoU(mask="none" if mask is None else "camera", vocab=vocab, grid=grid)
    metric.update(np.asarray(pred), np.asarray(gt), mask_camera=mask)
    return float(metric.compute()["mIoU_unrounded"])


def error_3d_inputs(gt: np.ndarray, pred: np.ndarray, vocab: Vocabulary = OCC3D_VOCAB,
                    mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A grid and palette for the 3D renderer that draw the error panel.

    The renderer hides ``vocab.free``, so outcomes are coded as class 0 (correct) and 1 (wrong)
    with a palette of ``vocab.num_classes`` colours that has only those two entries set.
    """
    err = error_grid(gt, pred, vocab, mask)
    codes = np.full(err.shape, vocab.free, np.uint8)
    codes[err == CORRECT] = 0
    codes[err == WRONG] = 1
    palette = np.zeros((vocab.num_classes, 3), np.uint8)
    palette[0], palette[1] = ERROR_COLOURS[CORRECT], ERROR_COLOURS[WRONG]
    return codes, palette


def caption(gt: np.ndarray, pred: np.ndarray, vocab: Vocabulary = OCC3D_VOCAB, grid: GridSpec = OCC3D,
            mask: np.ndarray | None = None, prefix: str = "") -> str:
    """"mIoU 41.27 % (camera mask) | wrong 1,234 of 40,001 voxels" for one frame."""
    miou = frame_miou(gt, pred, vocab, grid, mask)
    err = error_grid(gt, pred, vocab, mask)
    judged = int((err != NONE).sum())
    wrong = int((err == WRONG).sum())
    where = "camera mask" if mask is not None else "all voxels"
    m = "n/a" if np.isnan(miou) else f"{miou:.2f} %"
    return f"{prefix}mIoU {m} ({where}) | wrong {wrong:,} of {judged:,} voxels"


def compare_image(gt: np.ndarray, pred: np.ndarray, vocab: Vocabulary = OCC3D_VOCAB, grid: GridSpec = OCC3D,
                  mask: np.ndarray | None = None, mode: str = "topdown", view: str = "bev",
                  scale: int = 3, renderer=None, title: str = "", path_xy: np.ndarray | None = None,
                  path_current: int = 0) -> np.ndarray:
    """Ground truth | prediction | error, side by side, with the frame's mIoU underneath.

    ``mode="topdown"`` uses the numpy images (``scale`` x enlarged, ego car outlined); ``"3d"`` uses
    a :class:`~occ4d.vis.voxels.VoxelRenderer` (pass one to reuse it across frames). ``path_xy``
    (N, 2) metres in this frame's ego frame draws the ego path on the ground-truth and prediction
    panels (poses up to ``path_current`` as the past); the error panel stays outcome colours only.
    """
    gt, pred, mask = _check_pair(gt, pred, mask)
    if mode == "topdown":
        def scene(sem: np.ndarray) -> np.ndarray:
            pic = draw_ego(upscale(topdown_rgb(sem, vocab), scale), grid, scale)
            if path_xy is not None and len(path_xy) >= 2:
                pic = draw_path(pic, path_xy, grid, scale, path_current, width=max(scale // 2, 1))
            return pic

        panels = [scene(gt), scene(pred), upscale(error_topdown(gt, pred, vocab, mask), scale)]
    elif mode == "3d":
        from occ4d.vis.voxels import VoxelRenderer

        own = renderer is None
        r = VoxelRenderer(480, 400, grid, vocab) if own else renderer
        try:
            codes, palette = error_3d_inputs(gt, pred, vocab, mask)
            panels = [r.render(gt, view=view, path_xy=path_xy), r.render(pred, view=view, path_xy=path_xy),
                      r.render(codes, view=view, colours=palette)]
        finally:
            if own:
                r.close()
    else:
        raise ValueError(f"mode must be 'topdown' or '3d', got {mode!r}")
    names = ["ground truth", "prediction", "error (green correct, red wrong)"]
    row = hstack([titled(p, n) for p, n in zip(panels, names, strict=True)])
    text = caption(gt, pred, vocab, grid, mask)
    if title:  # on its own line: at 1-2 pixels per voxel one line would run off the picture
        text = f"{title}\n{text}"
    return vstack([row, text_bar(row.shape[1], text, 15)], gap=0)


def time_strip(clip: np.ndarray, vocab: Vocabulary = OCC3D_VOCAB, hz: float = 2.0, current: int = 0,
               every: int = 1, scale: int = 1, gt: np.ndarray | None = None,
               mask: np.ndarray | None = None) -> np.ndarray:
    """Top-down frames of a clip (T, X, Y, Z) in a row, each titled with its time from ``current``.

    With ``gt`` (T, X, Y, Z), three rows: ground truth, the clip (prediction) and the error.
    """
    clip = np.asarray(clip)
    if clip.ndim != 4:
        raise ValueError(f"a clip must be (T, X, Y, Z), got {clip.shape}")
    if gt is not None and np.shape(gt) != clip.shape:
        raise ValueError(f"ground truth {np.shape(gt)} and clip {clip.shape} differ in shape")
    ts = list(range(0, len(clip), max(int(every), 1)))

    def label(t: int) -> str:
        return f"t={(t - current) / hz:+.1f}s"

    def row(images: list[np.ndarray], name: str) -> np.ndarray:
        strip = hstack([titled(upscale(im, scale), label(t), 12) for im, t in zip(images, ts, strict=True)])
        return vstack([text_bar(strip.shape[1], name, 13), strip], gap=0)

    frames = [topdown_rgb(clip[t], vocab) for t in ts]
    if gt is None:
        return hstack([titled(upscale(im, scale), label(t), 12) for im, t in zip(frames, ts, strict=True)])
    masks = [None if mask is None else np.asarray(mask)[t] for t in ts]
    rows = [row([topdown_rgb(gt[t], vocab) for t in ts], "ground truth"), row(frames, "prediction"),
            row([error_topdown(gt[t], clip[t], vocab, m) for t, m in zip(ts, masks, strict=True)], "error")]
    return vstack(rows)
