"""3D voxel renders with pyvista, off screen (no display needed).

Only the exposed faces of occupied voxels are drawn (a face whose neighbour is occupied can never
be seen), so a 200x200x16 frame is one mesh of ~10^5 quads. Shading is baked into the face colours
by a fixed sun (tops at full palette colour, sides darker, bottoms darkest), which is fast,
identical on every OpenGL backend and keeps top faces exactly the Occ3D palette colour.

Off-screen OpenGL: without an X display, VTK (>= 9.4) picks its window class from
``VTK_DEFAULT_OPENGL_WINDOW``. :func:`configure_offscreen` sets it before VTK is imported: OSMesa
(``libosmesa6``, pure software, in-process) when present, else EGL (``libegl1`` + Mesa or a GPU
driver). VTK also falls back between them on its own when the chosen one fails to start.
"""

from __future__ import annotations

import ctypes.util
import os
from dataclasses import dataclass

import numpy as np

from occ4d.core.grid import OCC3D, GridSpec
from occ4d.core.vocab import OCC3D_VOCAB, Vocabulary

# Brightness of each face direction under the baked sun (+x, -x, +y, -y, +z, -z).
FACE_SHADE = np.array([0.80, 0.62, 0.72, 0.68, 1.0, 0.45], dtype=np.float32)
BACKGROUND_3D = (40, 40, 46)
DIM_TOWARDS = np.array([70, 70, 78], dtype=np.float32)  # grey that voxels outside a mask fade to
EGO_COLOUR = (255, 255, 255)
TRAJ_COLOUR = (255, 60, 60)

# Unit-cube face corners for each direction, in the order (+x, -x, +y, -y, +z, -z); counter-clockwise
# seen from outside so the normal points away from the voxel.
_FACE_CORNERS = np.array([
    [[1, 0, 0], [1, 1, 0], [1, 1, 1], [1, 0, 1]],
    [[0, 0, 0], [0, 0, 1], [0, 1, 1], [0, 1, 0]],
    [[0, 1, 0], [0, 1, 1], [1, 1, 1], [1, 1, 0]],
    [[0, 0, 0], [1, 0, 0], [1, 0, 1], [0, 0, 1]],
    [[0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]],
    [[0, 0, 0], [0, 1, 0], [1, 1, 0], [1, 0, 0]],
], dtype=np.float32)
_DIRS = [(0, 1), (0, -1), (1, 1), (1, -1), (2, 1), (2, -1)]  # (axis, step) per face direction

VIEWS = ("bev", "chase", "orbit")
MASK_MODES = ("dim", "hide")


def configure_offscreen() -> str:
    """Choose VTK's off-screen OpenGL window when there is no display; returns the choice.

    Must run before ``vtk`` is imported to take effect; a user's own setting is kept.
    """
    chosen = os.environ.get("VTK_DEFAULT_OPENGL_WINDOW", "")
    if chosen or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return chosen or "display"
    if ctypes.util.find_library("OSMesa"):
        chosen = "vtkOSOpenGLRenderWindow"
    else:
        chosen = "vtkEGLRenderWindow"
    os.environ["VTK_DEFAULT_OPENGL_WINDOW"] = chosen
    return chosen


def exposed_faces(occupied: np.ndarray) -> list[np.ndarray]:
    """For each of the 6 face directions, the (N, 3) voxel indices whose face there is visible.

    A face is exposed when its voxel is occupied and the neighbour across it is not (or lies
    outside the grid).
    """
    occ = np.asarray(occupied, dtype=bool)
    out = []
    for axis, step in _DIRS:
        neighbour = np.zeros_like(occ)
        src = [slice(None)] * 3
        dst = [slice(None)] * 3
        if step > 0:  # neighbour of i is i + 1
            dst[axis], src[axis] = slice(0, -1), slice(1, None)
        else:
            dst[axis], src[axis] = slice(1, None), slice(0, -1)
        neighbour[tuple(dst)] = occ[tuple(src)]
        out.append(np.argwhere(occ & ~neighbour))
    return out


def voxel_face_arrays(semantics: np.ndarray, vocab: Vocabulary = OCC3D_VOCAB, grid: GridSpec = OCC3D,
                      mask: np.ndarray | None = None, mask_mode: str = "dim",
                      colours: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Quads of the visible voxel faces: points (4N, 3) float32 metres and colours (N, 3) uint8.

    ``colours`` (C, 3) overrides the vocabulary palette (error panels colour by outcome).
    ``mask`` (bool [x, y, z]) marks voxels to show normally; outside it voxels are faded
    (``mask_mode="dim"``) or not drawn (``"hide"``).
    """
    if mask_mode not in MASK_MODES:
        raise ValueError(f"mask_mode must be one of {MASK_MODES}, got {mask_mode!r}")
    sem = np.asarray(semantics)
    if sem.shape != tuple(grid.shape):
        raise ValueError(f"semantics must have the grid's shape {grid.shape}, got {sem.shape}")
    palette = np.asarray(vocab.colours if colours is None else colours, dtype=np.float32)
    occ = sem != vocab.free
    inside = None
    if mask is not None:
        inside = np.asarray(mask).astype(bool)  # never index with a uint8 mask (PROTOCOLS §5)
        if inside.shape != sem.shape:
            raise ValueError(f"mask must have shape {sem.shape}, got {inside.shape}")
        if mask_mode == "hide":
            occ &= inside
    size = np.asarray(grid.voxel_size, dtype=np.float32)
    origin = np.asarray(grid.range_min, dtype=np.float32)
    pts, cols = [], []
    for d, idx in enumerate(exposed_faces(occ)):
        if not len(idx):
            continue
        corners = (idx[:, None, :].astype(np.float32) + _FACE_CORNERS[d][None]) * size + origin  # (N, 4, 3)
        pts.append(corners.reshape(-1, 3))
        c = palette[sem[idx[:, 0], idx[:, 1], idx[:, 2]]] * FACE_SHADE[d]
        if inside is not None and mask_mode == "dim":
            out = ~inside[idx[:, 0], idx[:, 1], idx[:, 2]]
            c[out] = 0.3 * c[out] + 0.7 * DIM_TOWARDS
        cols.append(c)
    if not pts:
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8)
    return np.concatenate(pts), np.clip(np.concatenate(cols).round(), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class CameraView:
    """A camera in the ego frame (metres): position, focal point, up vector, vertical view angle."""

    position: tuple[float, float, float]
    focal_point: tuple[float, float, float]
    up: tuple[float, float, float]
    view_angle: float = 30.0


def camera_view(view: str = "bev", grid: GridSpec = OCC3D, azimuth: float = 225.0,
                elevation: float = 35.0) -> CameraView:
    """A camera preset, scaled to the grid's extent.

    - ``bev``: high above the ego looking straight down, forward (x) up in the picture;
    - ``chase``: behind and above the ego looking ahead, as a chase camera in a game;
    - ``orbit``: on a circle around the grid centre at ``azimuth`` degrees (0 = ahead of the ego,
      90 = its left, counter-clockwise seen from above) and ``elevation`` degrees above the ground.
    """
    lo, hi = np.asarray(grid.range_min), np.asarray(grid.range_max)
    half = float(max(hi[0] - lo[0], hi[1] - lo[1])) / 2
    ground = float(max(lo[2], min(0.0, hi[2])))
    if view == "bev":
        height = half / np.tan(np.radians(15.0)) * 1.04 + hi[2]
        return CameraView((0.0, 0.0, height), (0.0, 0.0, ground), (1.0, 0.0, 0.0), 30.0)
    if view == "chase":
        return CameraView((-0.4 * half, 0.0, 0.3 * half), (0.5 * half, 0.0, ground), (0.0, 0.0, 1.0), 55.0)
    if view == "orbit":
        a, e = np.radians(azimuth), np.radians(elevation)
        r = 2.2 * half
        pos = (r * np.cos(e) * np.cos(a), r * np.cos(e) * np.sin(a), ground + r * np.sin(e))
        return CameraView(tuple(float(v) for v in pos), (0.0, 0.0, ground), (0.0, 0.0, 1.0), 36.0)
    raise ValueError(f"view must be one of {VIEWS}, got {view!r}")


def ego_box(length: float = 4.1, width: float = 1.85, height: float = 1.6, rear_overhang: float = 1.0):
    """The ego car as (8, 3) box corners in the ego frame (origin on the rear axle at the ground)."""
    x0, x1 = -rear_overhang, length - rear_overhang
    return np.array([[x, y, z] for x in (x0, x1) for y in (-width / 2, width / 2) for z in (0.0, height)])


class VoxelRenderer:
    """An off-screen pyvista plotter reused across frames (videos render many frames into one window).

    Use as a context manager, or call :meth:`close`. ``render`` returns (H, W, 3) uint8.
    """

    def __init__(self, width: int = 800, height: int = 600, grid: GridSpec = OCC3D,
                 vocab: Vocabulary = OCC3D_VOCAB, background: tuple[int, int, int] = BACKGROUND_3D):
        configure_offscreen()
        import pyvista as pv

        self._pv = pv
        self.grid, self.vocab = grid, vocab
        self.plotter = pv.Plotter(off_screen=True, window_size=(int(width), int(height)), lighting="none")
        self.plotter.set_background([c / 255 for c in background])
        self._actors: list = []
        self._add_ego()

    def __enter__(self) -> VoxelRenderer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.plotter is not None:
            self.plotter.close()
            self.plotter = None

    def _add_ego(self) -> None:
        pv = self._pv
        lo, hi = ego_box().min(0), ego_box().max(0)
        body = pv.Box(bounds=(lo[0], hi[0], lo[1], hi[1], lo[2], hi[2]))
        nose = pv.Cone(center=(hi[0] + 0.9, 0, hi[2] / 2), direction=(1, 0, 0), height=1.8, radius=0.8,
                       resolution=12)
        for mesh, col in ((body, EGO_COLOUR), (nose, TRAJ_COLOUR)):
            self.plotter.add_mesh(mesh, color=[c / 255 for c in col], lighting=False, show_edges=False)

    def _clear(self) -> None:
        for actor in self._actors:
            self.plotter.remove_actor(actor, render=False)
        self._actors = []

    def set_camera(self, view: CameraView) -> None:
        cam = self.plotter.camera
        cam.position, cam.focal_point, cam.up = view.position, view.focal_point, view.up
        cam.view_angle = view.view_angle
        lo, hi = np.asarray(self.grid.range_min), np.asarray(self.grid.range_max)
        far = float(np.linalg.norm(np.asarray(view.position) - (lo + hi) / 2) + np.linalg.norm(hi - lo))
        cam.clipping_range = (0.5, far)

    def render(self, semantics: np.ndarray, mask: np.ndarray | None = None, mask_mode: str = "dim",
               view: str | CameraView = "bev", azimuth: float = 225.0, path_xy: np.ndarray | None = None,
               colours: np.ndarray | None = None) -> np.ndarray:
        """Render one grid; ``path_xy`` (N, 2) draws an ego path (metres, this frame's ego frame)."""
        pv = self._pv
        self._clear()
        points, cols = voxel_face_arrays(semantics, self.vocab, self.grid, mask, mask_mode, colours)
        if len(cols):
            n = len(cols)
            faces = np.hstack([np.full((n, 1), 4, np.int64), np.arange(4 * n, dtype=np.int64).reshape(n, 4)])
            mesh = pv.PolyData(points, faces=faces.ravel())
            mesh.cell_data["rgb"] = cols
            self._actors.append(self.plotter.add_mesh(mesh, scalars="rgb", rgb=True, lighting=False,
                                                      show_scalar_bar=False, reset_camera=False,
                                                      render=False))
        if path_xy is not None and len(path_xy) >= 2:
            z = 0.6  # above the road surface voxels (their tops are at about +0.2 m)
            line = pv.lines_from_points(np.column_stack([path_xy, np.full(len(path_xy), z)]))
            self._actors.append(self.plotter.add_mesh(line, color=[c / 255 for c in TRAJ_COLOUR],
                                                      line_width=4, lighting=False, reset_camera=False,
                                                      render=False))
            dots = pv.PolyData(np.column_stack([path_xy, np.full(len(path_xy), z)]))
            self._actors.append(self.plotter.add_mesh(dots, color=[c / 255 for c in TRAJ_COLOUR],
                                                      point_size=9, render_points_as_spheres=False,
                                                      lighting=False, reset_camera=False, render=False))
        cam = view if isinstance(view, CameraView) else camera_view(view, self.grid, azimuth)
        self.set_camera(cam)
        self.plotter.render()  # screenshot() alone may return the previous picture
        img = self.plotter.screenshot(return_img=True)
        return np.ascontiguousarray(np.asarray(img)[:, :, :3], dtype=np.uint8)


def render_voxels(semantics: np.ndarray, vocab: Vocabulary = OCC3D_VOCAB, grid: GridSpec = OCC3D,
                  mask: np.ndarray | None = None, mask_mode: str = "dim", view: str = "bev",
                  azimuth: float = 225.0, size: tuple[int, int] = (800, 600),
                  path_xy: np.ndarray | None = None) -> np.ndarray:
    """Render one frame in 3D and return (H, W, 3) uint8 (opens and closes its own plotter)."""
    with VoxelRenderer(size[0], size[1], grid, vocab) as r:
        return r.render(semantics, mask, mask_mode, view, azimuth, path_xy)
