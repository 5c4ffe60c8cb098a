"""Top-down (bird's eye) images of semantic grids: numpy only, a few milliseconds per frame.

The picture shows, for every (x, y) column, the colour of its highest non-free voxel. The grid is
in the ego frame (x forward, y left, z up; PROTOCOLS §1.1), so the image is turned to read like a
map seen from above with the car driving up the page: image row 0 is the largest x (ahead), image
column 0 is the largest y (left). Pixel ``(r, c)`` therefore shows voxel column
``(X - 1 - r, Y - 1 - c)``.
"""

from __future__ import annotations

import io
import os

import numpy as np

from occ4d.core.vocab import OCC3D_VOCAB, Vocabulary
from occ4d.io.atomic import write_bytes

BACKGROUND = (32, 32, 32)  # empty columns; not a palette colour, so pictures stay countable


def grid_to_image(a: np.ndarray) -> np.ndarray:
    """Turn an array indexed ``[x, y, ...]`` into image order ``[row, col, ...]`` (x up, y left)."""
    return a[::-1, ::-1]


def image_to_grid_index(row: np.ndarray | int, col: np.ndarray | int, shape_xy: tuple[int, int]):
    """The voxel column ``(x, y)`` shown at image pixel ``(row, col)`` (inverse of grid_to_image)."""
    return shape_xy[0] - 1 - np.asarray(row), shape_xy[1] - 1 - np.asarray(col)


def _column_mask(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        mask = mask.astype(bool)  # stored masks are uint8; never index with them (PROTOCOLS §5)
    if mask.shape == shape:
        return mask
    if mask.shape == shape[:2]:
        return np.broadcast_to(mask[:, :, None], shape)
    raise ValueError(f"mask must have shape {shape} or {shape[:2]}, got {mask.shape}")


def topdown_labels(semantics: np.ndarray, vocab: Vocabulary = OCC3D_VOCAB, mask: np.ndarray | None = None,
                   return_height: bool = False):
    """Per column, the class of the highest non-free voxel, in image order (H=X, W=Y) uint8.

    Columns with no occupied voxel (or none inside ``mask``) hold ``vocab.free``. With
    ``return_height`` also return the z index of that voxel (-1 for empty columns).
    """
    sem = np.asarray(semantics)
    if sem.ndim != 3:
        raise ValueError(f"semantics must be (X, Y, Z), got shape {sem.shape}")
    occ = sem != vocab.free
    m = _column_mask(mask, sem.shape)
    if m is not None:
        occ &= m
    nz = sem.shape[2]
    # argmax finds the first True; searching the flipped z axis finds the highest one.
    top = nz - 1 - np.argmax(occ[:, :, ::-1], axis=2)
    any_occ = occ.any(axis=2)
    labels = np.take_along_axis(sem, top[:, :, None], axis=2)[:, :, 0].astype(np.uint8)
    labels[~any_occ] = vocab.free
    if return_height:
        height = np.where(any_occ, top, -1)
        return grid_to_image(labels), grid_to_image(height)
    return grid_to_image(labels)


def colourize(labels: np.ndarray, vocab: Vocabulary = OCC3D_VOCAB,
              background: tuple[int, int, int] = BACKGROUND) -> np.ndarray:
    """Map a label image to RGB uint8 with the vocabulary's palette; free becomes ``background``."""
    lut = np.array(vocab.colours, dtype=np.uint8, copy=True)
    lut[vocab.free] = background
    labels = np.asarray(labels)
    if labels.size and int(labels.max()) >= len(lut):
        raise ValueError(f"label {int(labels.max())} outside the vocabulary {vocab.name} (0..{len(lut) - 1})")
    return lut[labels]


def topdown_rgb(semantics: np.ndarray, vocab: Vocabulary = OCC3D_VOCAB, mask: np.ndarray | None = None,
                background: tuple[int, int, int] = BACKGROUND, shade: bool = False) -> np.ndarray:
    """A top-down RGB image (H=X, W=Y, 3) uint8 of a semantic grid ``[x, y, z]``.

    Each pixel has the palette colour of the column's highest non-free voxel (x forward points up,
    y left is image left). ``mask`` (bool, (X, Y, Z) or (X, Y)) hides voxels where it is False,
    e.g. ``mask_camera``. ``shade`` darkens lower voxels a little so height reads at a glance.
    """
    if shade:
        labels, height = topdown_labels(semantics, vocab, mask, return_height=True)
        rgb = colourize(labels, vocab, background)
        nz = np.asarray(semantics).shape[2]
        factor = 0.55 + 0.45 * (np.clip(height, 0, None) / max(nz - 1, 1))
        factor[height < 0] = 1.0
        return (rgb.astype(np.float32) * factor[:, :, None]).round().astype(np.uint8)
    return colourize(topdown_labels(semantics, vocab, mask), vocab, background)


def upscale(rgb: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement by an integer factor (keeps colours exact)."""
    if factor <= 1:
        return rgb
    return np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1)


def png_bytes(rgb: np.ndarray) -> bytes:
    """Encode an (H, W, 3|4) uint8 image as PNG bytes."""
    from PIL import Image

    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
        raise ValueError(f"an image must be (H, W, 3|4) uint8, got {rgb.shape} {rgb.dtype}")
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def save_png(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Write an (H, W, 3|4) uint8 image as a PNG, atomically."""
    write_bytes(path, png_bytes(rgb))
