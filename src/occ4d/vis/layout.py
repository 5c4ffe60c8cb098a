"""Putting pictures together: titles, captions, side-by-side panels, grids, and ego paths on maps.

All functions take and return (H, W, 3) uint8 arrays. Text uses Pillow's built-in scalable font,
so nothing depends on fonts installed on the machine.
"""

from __future__ import annotations

import functools

import numpy as np

from occ4d.core.grid import GridSpec

TEXT_COLOUR = (235, 235, 235)
BAR_COLOUR = (18, 18, 22)
PAST_COLOUR = (255, 255, 255)
FUTURE_COLOUR = (255, 60, 60)


@functools.lru_cache(maxsize=8)
def font(size: int = 14):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def text_bar(width: int, text: str, size: int = 14, align: str = "left") -> np.ndarray:
    """A dark strip ``width`` pixels wide holding one or more lines of text."""
    from PIL import Image, ImageDraw

    lines = text.split("\n")
    line_h = size + 4
    img = Image.new("RGB", (max(int(width), 1), line_h * len(lines) + 6), BAR_COLOUR)
    draw = ImageDraw.Draw(img)
    f = font(size)
    for i, line in enumerate(lines):
        w = draw.textlength(line, font=f)
        x = 6 if align == "left" else max((width - w) / 2, 2)
        draw.text((x, 3 + i * line_h), line, fill=TEXT_COLOUR, font=f)
    return np.asarray(img)


def titled(rgb: np.ndarray, title: str, size: int = 14, below: bool = False) -> np.ndarray:
    """The image with a text bar above it (or below with ``below``)."""
    bar = text_bar(rgb.shape[1], title, size, align="center")
    return np.concatenate([rgb, bar] if below else [bar, rgb], axis=0)


def hstack(images: list[np.ndarray], gap: int = 4, fill: tuple[int, int, int] = BAR_COLOUR) -> np.ndarray:
    """Images side by side, top-aligned, separated by ``gap`` pixels."""
    h = max(i.shape[0] for i in images)
    parts = []
    for k, im in enumerate(images):
        if im.shape[0] < h:
            pad = np.empty((h - im.shape[0], im.shape[1], 3), np.uint8)
            pad[:] = fill
            im = np.concatenate([im, pad], axis=0)
        parts.append(im)
        if gap and k < len(images) - 1:
            sep = np.empty((h, gap, 3), np.uint8)
            sep[:] = fill
            parts.append(sep)
    return np.concatenate(parts, axis=1)


def vstack(images: list[np.ndarray], gap: int = 4, fill: tuple[int, int, int] = BAR_COLOUR) -> np.ndarray:
    """Images one above the other, left-aligned."""
    return np.ascontiguousarray(hstack([np.swapaxes(i, 0, 1) for i in images], gap, fill).swapaxes(0, 1))


def even_size(rgb: np.ndarray, multiple: int = 16) -> np.ndarray:
    """Pad with the bar colour to a multiple of ``multiple`` pixels (H.264 encoders need even sizes)."""
    h, w = rgb.shape[:2]
    H, W = -(-h // multiple) * multiple, -(-w // multiple) * multiple
    if (H, W) == (h, w):
        return rgb
    out = np.empty((H, W, 3), np.uint8)
    out[:] = BAR_COLOUR
    out[:h, :w] = rgb
    return out


def metres_to_pixels(xy: np.ndarray, grid: GridSpec, scale: int) -> np.ndarray:
    """Ego-frame (x, y) metres to (col, row) pixel coordinates of a top-down image (see topdown)."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    vx, vy = grid.voxel_size[0], grid.voxel_size[1]
    x0, y0 = grid.range_min[0], grid.range_min[1]
    row = (grid.shape[0] - (xy[:, 0] - x0) / vx) * scale
    col = (grid.shape[1] - (xy[:, 1] - y0) / vy) * scale
    return np.column_stack([col, row])


def draw_path(rgb: np.ndarray, path_xy: np.ndarray, grid: GridSpec, scale: int, current: int,
              width: int = 2) -> np.ndarray:
    """Draw an ego path (N, 2 metres in this image's ego frame) on a top-down image.

    Poses up to ``current`` are the past (white), later ones the future (red); each pose is a dot.
    """
    from PIL import Image, ImageDraw

    img = Image.fromarray(np.ascontiguousarray(rgb))
    draw = ImageDraw.Draw(img)
    px = [tuple(p) for p in metres_to_pixels(path_xy, grid, scale)]
    r = max(width + 1, 2)
    for i in range(len(px) - 1):
        colour = PAST_COLOUR if i + 1 <= current else FUTURE_COLOUR
        draw.line([px[i], px[i + 1]], fill=colour, width=width)
    for i, (c, rr) in enumerate(px):
        colour = PAST_COLOUR if i <= current else FUTURE_COLOUR
        draw.ellipse([c - r, rr - r, c + r, rr + r], fill=colour)
    return np.asarray(img)


def draw_ego(rgb: np.ndarray, grid: GridSpec, scale: int, length: float = 4.1, width: float = 1.85,
             rear_overhang: float = 1.0) -> np.ndarray:
    """Outline the ego car (a box at the origin, nose marked) on a top-down image."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(np.ascontiguousarray(rgb))
    draw = ImageDraw.Draw(img)
    x0, x1 = -rear_overhang, length - rear_overhang
    outline = [[x0, -width / 2], [x0, width / 2], [x1, width / 2], [x1, -width / 2]]
    corners = metres_to_pixels(outline, grid, scale)
    draw.polygon([tuple(p) for p in corners], fill=(255, 255, 255), outline=(0, 0, 0))
    nose = metres_to_pixels([[x1 - 0.6, 0.0]], grid, scale)[0]
    r = max(scale // 2, 2)
    draw.ellipse([nose[0] - r, nose[1] - r, nose[0] + r, nose[1] + r], fill=FUTURE_COLOUR)
    return np.asarray(img)
