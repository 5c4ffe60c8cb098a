"""Videos of clips: GIF (Pillow) and MP4 (H.264 through imageio-ffmpeg's bundled ffmpeg).

Each frame shows the grid at time t with the ego path drawn in that frame's own ego frame
(the clip's trajectory is relative to its current frame, DESIGN; :meth:`Trajectory.rebased` moves
it), the past in white and the future in red, and a bar with the time relative to the current
frame. Frames are produced lazily so long clips never sit in memory as pictures (except for GIF,
whose encoder needs them all).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from occ4d.core.grid import OCC3D, GridSpec
from occ4d.core.trajectory import Trajectory
from occ4d.core.vocab import OCC3D_VOCAB, Vocabulary
from occ4d.io.atomic import atomic_path, write_bytes
from occ4d.vis.layout import draw_ego, draw_path, even_size, hstack, text_bar, titled, vstack
from occ4d.vis.topdown import topdown_rgb, upscale

VIDEO_SUFFIXES = (".gif", ".mp4")


def frame_paths(trajectory: np.ndarray | Trajectory | None, frames: int) -> list[np.ndarray | None]:
    """For each frame t, every pose's (x, y) in frame t's ego frame: (T, 2) arrays, or Nones."""
    if trajectory is None:
        return [None] * frames
    traj = trajectory if isinstance(trajectory, Trajectory) else Trajectory(np.asarray(trajectory))
    if len(traj) != frames:
        raise ValueError(f"trajectory has {len(traj)} rows, the clip {frames} frames")
    return [traj.rebased(t).xyyaw[:, :2] for t in range(frames)]


def time_label(t: int, frames: int, current: int, hz: float) -> str:
    when = "history" if t < current else ("now" if t == current else "future")
    return f"t = {(t - current) / hz:+.1f} s   frame {t + 1}/{frames}   ({when})"


def clip_frames(semantics: np.ndarray, vocab: Vocabulary = OCC3D_VOCAB, grid: GridSpec = OCC3D,
                trajectory: np.ndarray | Trajectory | None = None, hz: float = 2.0, current: int = 0,
                mode: str = "topdown", view: str = "bev", scale: int = 3, size: tuple[int, int] = (640, 480),
                mask: np.ndarray | None = None, mask_mode: str = "dim", gt: np.ndarray | None = None,
                orbit_step: float = 3.0, title: str = "") -> Iterator[np.ndarray]:
    """Yield one (H, W, 3) uint8 picture per frame of a clip (T, X, Y, Z).

    ``mode`` "topdown" (numpy, ``scale`` x enlarged) or "3d" (pyvista, ``size`` pixels, camera
    ``view``; the orbit camera turns ``orbit_step`` degrees per frame). With ``gt`` (T, X, Y, Z)
    each picture is ground truth | prediction | error with the frame's mIoU.
    """
    sem = np.asarray(semantics)
    if sem.ndim != 4 or sem.shape[1:] != tuple(grid.shape):
        raise ValueError(f"a clip must be (T, {', '.join(map(str, grid.shape))}), got {sem.shape}")
    n = len(sem)
    if not 0 <= current < n:
        raise ValueError(f"current frame {current} outside 0..{n - 1}")
    if mode not in ("topdown", "3d"):
        raise ValueError(f"mode must be 'topdown' or '3d', got {mode!r}")
    if gt is not None and np.shape(gt) != sem.shape:
        raise ValueError(f"ground truth {np.shape(gt)} and clip {sem.shape} differ in shape")
    masks = [None] * n if mask is None else list(np.asarray(mask).astype(bool))
    paths = frame_paths(trajectory, n)
    renderer = None
    if mode == "3d":
        from occ4d.vis.voxels import VoxelRenderer

        w, h = size if gt is None else (size[0] // 2, size[1] // 2)
        renderer = VoxelRenderer(w, h, grid, vocab)
    try:
        for t in range(n):
            text = (f"{title}   " if title else "") + time_label(t, n, current, hz)
            azimuth = 225.0 + orbit_step * t
            if gt is not None:
                from occ4d.vis.compare import compare_image

                pic = compare_image(gt[t], sem[t], vocab, grid, masks[t], mode, view, scale, renderer,
                                    path_xy=paths[t], path_current=t)
            elif renderer is not None:
                pic = renderer.render(sem[t], masks[t], mask_mode, view, azimuth, path_xy=paths[t])
            else:
                hidden = masks[t] if mask_mode == "hide" else None
                pic = upscale(topdown_rgb(sem[t], vocab, hidden, shade=True), scale)
                pic = draw_ego(pic, grid, scale)
                if paths[t] is not None:
                    pic = draw_path(pic, paths[t], grid, scale, t, width=max(scale // 2, 1))
            yield even_size(vstack([text_bar(pic.shape[1], text, 15), pic], gap=0))
    finally:
        if renderer is not None:
            renderer.close()


def gif_bytes(frames: Iterable[np.ndarray], fps: float = 2.0) -> bytes:
    """Encode frames as a looping GIF (one adaptive 255-colour palette per frame)."""
    from PIL import Image

    images = [Image.fromarray(np.asarray(f)).quantize(255, method=Image.Quantize.MEDIANCUT) for f in frames]
    if not images:
        raise ValueError("a video needs at least one frame")
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:],
                   duration=int(round(1000 / fps)), loop=0, optimize=False, disposal=1)
    return buf.getvalue()


def write_mp4(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float = 2.0,
              quality: int = 7) -> int:
    """Stream frames into an H.264 MP4 (yuv420p, plays everywhere) atomically; returns the count."""
    import imageio_ffmpeg

    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise ValueError("a video needs at least one frame")
    h, w = first.shape[:2]
    count = 0
    with atomic_path(path) as tmp:
        # The temporary name has no .mp4 suffix, so the container is named explicitly.
        writer = imageio_ffmpeg.write_frames(str(tmp), (w, h), fps=fps, codec="libx264", quality=quality,
                                             macro_block_size=16, output_params=["-f", "mp4"])
        writer.send(None)
        try:
            for f in _chain(first, it):
                f = np.ascontiguousarray(f, dtype=np.uint8)
                if f.shape[:2] != (h, w):
                    raise ValueError(f"frame {count} is {f.shape[1]}x{f.shape[0]}, the video {w}x{h}")
                writer.send(f)
                count += 1
        finally:
            writer.close()
    return count


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float = 2.0) -> int:
    """Write frames as .gif or .mp4 (by the path's suffix), atomically; returns the frame count."""
    suffix = Path(path).suffix.lower()
    if suffix == ".gif":
        frames = list(frames)
        write_bytes(path, gif_bytes(frames, fps))
        return len(frames)
    if suffix == ".mp4":
        return write_mp4(path, frames, fps)
    raise ValueError(f"video files must end in {VIDEO_SUFFIXES}, got {path}")


def read_video(path: str | os.PathLike) -> np.ndarray:
    """Read every frame of a GIF or MP4 back as (T, H, W, 3) uint8 (tests, reports)."""
    import imageio.v3 as iio

    frames = iio.imread(path, index=None)
    frames = np.asarray(frames)
    return frames[..., :3] if frames.shape[-1] == 4 else frames


def contact_sheet(frames: list[np.ndarray], columns: int = 4) -> np.ndarray:
    """Frames in a grid, ``columns`` per row (for reports and time strips of rendered videos)."""
    rows = [hstack(frames[i:i + columns]) for i in range(0, len(frames), columns)]
    width = max(r.shape[1] for r in rows)
    return vstack([titled(r, "", 2) if r.shape[1] < width else r for r in rows])
