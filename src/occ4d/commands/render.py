"""``occ4d render INPUT --out FILE.png|.gif|.mp4|.html``: pictures, videos and the HTML viewer."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from tyro.conf import Positional

OUT_SUFFIXES = (".png", ".gif", ".mp4", ".html")


def render(
    input: Positional[Path],
    out: Path,
    view: Literal["bev", "chase", "orbit"] = "orbit",
    style: Literal["3d", "topdown"] = "3d",
    mask: Literal["none", "camera"] = "none",
    mask_mode: Literal["dim", "hide"] = "dim",
    gt: Path | None = None,
    scene: str | None = None,
    frame: int | None = None,
    every: int = 1,
    fps: float = 2.0,
    size: tuple[int, int] = (800, 600),
    scale: int = 3,
    title: str = "",
) -> None:
    """Render occupancy: a frame to PNG, a clip to GIF/MP4, anything to an interactive HTML viewer.

    INPUT is a labels.npz, a prediction .npz, a clip file (generated or forecast), a folder of clip
    files (``occ4d forecast --save`` or ``occ4d generate`` output), a token folder, a prediction
    folder, or an Occ3D folder or scene folder (one scene, in time order).

    Args:
        input: what to render (see above).
        out: the file to write; its suffix picks the kind: .png, .gif, .mp4 or .html.
        view: 3D camera: bird's eye, chase camera behind the ego, or orbit (turns in videos).
        style: 3D voxels (pyvista, off screen) or the fast numpy top-down map.
        mask: "camera" dims or hides voxels outside the ground truth's camera mask.
        mask_mode: with --mask camera: dim the voxels outside, or hide them.
        gt: ground truth for INPUT (same kinds of input): shows GT | prediction | error with mIoU.
        scene: the scene of a dataset folder, or the clip (file stem) of a folder of clip files
            (default: the first).
        frame: for PNG, the frame to draw (default: a single frame, or a top-down time strip of a
            clip).
        every: for time strips, draw every n-th frame.
        fps: frames per second of videos.
        size: width and height of 3D renders in pixels.
        scale: pixels per voxel of top-down pictures.
        title: text shown in the picture's caption and the viewer's title.
    """
    from occ4d.core.errors import DataError, check_counts

    check_counts(every=every, scale=scale)
    suffix = out.suffix.lower()
    if suffix not in OUT_SUFFIXES:
        raise SystemExit(f"--out must end in one of {', '.join(OUT_SUFFIXES)}, got {out}")
    try:
        _render(input, out, suffix, view, style, mask, mask_mode, gt, scene, frame, every, fps, size, scale,
                title)
    except DataError as e:
        raise SystemExit(f"error: {e}") from e
    print(f"wrote {out}")


def _render(input, out, suffix, view, style, mask, mask_mode, gt, scene, frame, every, fps, size, scale,
            title) -> None:
    import numpy as np

    from occ4d.core.errors import DataError
    from occ4d.vis.inputs import load_sequence, pair

    truth = load_sequence(gt, scene) if gt is not None else None
    seq = load_sequence(input, scene, order=truth.tokens if truth is not None else None)
    if truth is not None:
        seq, truth = pair(seq, truth)
    masks = None
    if mask == "camera":
        masks = (truth or seq).mask_camera
        if masks is None:
            raise DataError(gt or input, "--mask camera needs mask_camera in the (ground-truth) input")
    name = title or seq.name

    if frame is not None:
        if not -len(seq) <= frame < len(seq):
            raise DataError(input, f"--frame {frame} outside 0..{len(seq) - 1}")
        keep = [frame % len(seq)]
        if len(seq) > 1:  # say which moment of the clip the picture shows
            from occ4d.vis.video import time_label

            name = f"{name}   {time_label(keep[0], len(seq), seq.current, seq.hz)}".strip()
        seq = seq.select(keep)
        truth = truth.select(keep) if truth is not None else None
        masks = masks[keep] if masks is not None else None

    if suffix == ".html":
        from occ4d.vis.viewer import save_viewer

        sources = {"occ": seq.semantics}
        if truth is not None:
            sources = {"gt": truth.semantics, "pred": seq.semantics}
        save_viewer(out, sources, vocab=seq.vocab, grid=seq.grid,
                    mask_camera=(truth or seq).mask_camera, trajectory=seq.trajectory, hz=seq.hz,
                    current=seq.current, title=name or "occ4d viewer", labels={"occ": "occupancy"})
        return

    if suffix == ".png":
        from occ4d.vis.topdown import save_png

        save_png(out, _picture(seq, truth, masks, view, style, mask_mode, every, size, scale, name))
        return

    from occ4d.vis.video import clip_frames, write_video

    semantics, trajectory, step = seq.semantics, seq.trajectory, 3.0
    gt_sem = truth.semantics if truth is not None else None
    if len(seq) == 1 and style == "3d":
        # One frame as a video: a turntable around it (36 views, 10 degrees apart).
        n = 36
        semantics, view, step = np.repeat(semantics, n, axis=0), "orbit", 10.0
        gt_sem = None if gt_sem is None else np.repeat(gt_sem, n, axis=0)
        masks = None if masks is None else np.repeat(masks, n, axis=0)
        trajectory = None
    frames = clip_frames(semantics, seq.vocab, seq.grid, trajectory, seq.hz, seq.current, style, view, scale,
                         size, masks, mask_mode, gt_sem, orbit_step=step, title=name)
    write_video(out, frames, fps)


def _picture(seq, truth, masks, view, style, mask_mode, every, size, scale, name):
    from occ4d.vis.compare import compare_image, time_strip
    from occ4d.vis.layout import draw_ego, titled
    from occ4d.vis.topdown import topdown_rgb, upscale

    m0 = None if masks is None else masks[0]
    if len(seq) > 1:
        gt = truth.semantics if truth is not None else None
        strip = time_strip(seq.semantics, seq.vocab, seq.hz, seq.current, every, max(scale // 2, 1), gt,
                           masks)
        return titled(strip, name) if name else strip
    if truth is not None:
        return compare_image(truth.semantics[0], seq.semantics[0], seq.vocab, seq.grid, m0,
                             "3d" if style == "3d" else "topdown", view, scale, title=name)
    if style == "3d":
        from occ4d.vis.voxels import render_voxels

        pic = render_voxels(seq.semantics[0], seq.vocab, seq.grid, m0, mask_mode, view, size=size)
    else:
        hidden = m0 if mask_mode == "hide" else None
        pic = draw_ego(upscale(topdown_rgb(seq.semantics[0], seq.vocab, hidden, shade=True), scale),
                       seq.grid, scale)
    return titled(pic, name) if name else pic
