"""Camera images and their calibrations: devkit ``cams`` entries, mmdet3d v1.1 infos, LiDAR sweeps.

Two calibration layouts are read into one :class:`occ4d.core.CameraRig` (OpenCV camera axes,
sensor-to-ego 4x4, intrinsics of the image as stored on disk):

- devkit / BEVDet ``cams[CAM_*]`` (PROTOCOLS §2.2): ``sensor2ego_translation/rotation``
  (quaternion w, x, y, z) and ``cam_intrinsic`` (3, 3); ``data_path`` names the image;
- mmdet3d v1.1 ``data_list[i]["images"][CAM_*]``: ``cam2img`` (3, 3), ``cam2ego`` (4, 4) or,
  without it, ``lidar2cam`` (4, 4) with the frame's ``lidar_points.lidar2ego``; ``img_path`` is
  relative to the folder of the images. ``cam2ego`` is preferred: mmdet3d's ``lidar2cam`` also
  folds in the ego motion between the LiDAR and camera timestamps (about 0.3 m at city speed on
  the real keyframe), so a rig built from it is the camera's pose in the LiDAR's ego frame.

Every problem (missing image, wrong matrix shape, NaN, a camera missing) is a DataError naming
the file. Info files go through the restricted unpickler (occ4d.io.infos.load_pkl).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from occ4d.core.camera import NUSCENES_CAMERAS, Camera, CameraRig
from occ4d.core.errors import DataError
from occ4d.core.pose import check_pose, invert_pose, make_pose
from occ4d.io.infos import load_pkl


def load_image(path: str | Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataError(path, "image not found")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(path, f"unreadable image ({type(e).__name__}: {e})") from e


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file, read from its header only."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataError(path, "image not found")
    try:
        with Image.open(path) as im:
            return int(im.width), int(im.height)
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(path, f"unreadable image ({type(e).__name__}: {e})") from e


def load_camera_targets(path: str | Path, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(depth float32 (H, W) metres, 0 = none; semantics uint8 (H, W)) of one rendered camera."""
    from occ4d.io.occ3d import read_npz

    arrays = read_npz(path, ("depth", "semantics"))
    depth = np.asarray(arrays["depth"], np.float32)
    sem = np.asarray(arrays["semantics"])
    for name, a in (("depth", depth), ("semantics", sem)):
        if a.shape != tuple(shape):
            raise DataError(path, f"{name} has shape {a.shape}, the image is {tuple(shape)}")
    if not np.all(np.isfinite(depth)) or depth.min() < 0:
        raise DataError(path, "depth must be finite and >= 0")
    return depth, sem.astype(np.uint8)


def load_lidar_points(path: str | Path, dims: int = 5) -> np.ndarray:
    """A nuScenes ``.pcd.bin`` sweep as (N, dims) float32 (x, y, z, intensity, ring in the LiDAR frame)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "LiDAR sweep not found")
    raw = np.fromfile(path, dtype=np.float32)
    if raw.size % dims:
        raise DataError(path, f"{raw.size} floats is not a whole number of {dims}-value points")
    pts = raw.reshape(-1, dims)
    if not np.all(np.isfinite(pts[:, :3])):
        raise DataError(path, "LiDAR points contain NaN or infinite coordinates")
    return pts


def _matrix(value, shape: tuple[int, int], source, what: str) -> np.ndarray:
    try:
        m = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise DataError(source, f"{what} is not a numeric matrix ({e})") from e
    if m.shape != shape:
        raise DataError(source, f"{what} must have shape {shape}, got {m.shape}")
    if not np.all(np.isfinite(m)):
        raise DataError(source, f"{what} contains NaN or infinite values")
    return m


def rig_from_cams(cams: Mapping, image_sizes: Mapping[str, tuple[int, int]], source,
                  names: tuple[str, ...] = NUSCENES_CAMERAS) -> CameraRig:
    """A rig from a devkit info's ``cams`` dict; ``image_sizes[name]`` = (width, height) of its image."""
    if not isinstance(cams, Mapping):
        raise DataError(source, "info has no 'cams' dict (no camera calibration)")
    out = []
    for name in names:
        if name not in cams:
            raise DataError(source, f"camera {name} missing from 'cams' (has {sorted(cams)})")
        c = cams[name]
        where = f"cams[{name}]"
        k = _matrix(c.get("cam_intrinsic"), (3, 3), source, f"{where}.cam_intrinsic")
        t = _matrix([c.get("sensor2ego_translation")], (1, 3), source, f"{where}.sensor2ego_translation")[0]
        q = _matrix([c.get("sensor2ego_rotation")], (1, 4), source, f"{where}.sensor2ego_rotation")[0]
        s2e = check_pose(make_pose(t, q), source, f"{where} sensor2ego")
        w, h = image_sizes[name]
        out.append(Camera(name, k, s2e, int(w), int(h)))
    return CameraRig(tuple(out)).validate(source)


@dataclass(frozen=True)
class Keyframe:
    """One real keyframe of an mmdet3d v1.1 info: calibrated rig, image and LiDAR files, poses."""

    token: str
    rig: CameraRig
    images: tuple[Path, ...]  # in rig order
    lidar_path: Path
    lidar2ego: np.ndarray
    ego2global: np.ndarray
    timestamp: float  # seconds

    def load_images(self) -> np.ndarray:
        """(N, H, W, 3) uint8, cameras in rig order (all images must share one size)."""
        imgs = [load_image(p) for p in self.images]
        shapes = {im.shape for im in imgs}
        if len(shapes) != 1:
            raise DataError(self.images[0], f"images of one keyframe differ in size: {sorted(shapes)}")
        return np.stack(imgs)

    def lidar_in_ego(self) -> np.ndarray:
        """LiDAR points (N, 3) moved into the ego frame with ``lidar2ego``."""
        pts = load_lidar_points(self.lidar_path)[:, :3].astype(np.float64)
        return pts @ self.lidar2ego[:3, :3].T + self.lidar2ego[:3, 3]


def load_mmdet3d_keyframe(pkl: str | Path, index: int = 0, data_dir: str | Path | None = None,
                          names: tuple[str, ...] = NUSCENES_CAMERAS) -> Keyframe:
    """Keyframe ``index`` of an mmdet3d v1.1 info file; image and LiDAR paths are looked up in
    ``data_dir`` (default: the info file's folder) by their stored relative path, then by name."""
    pkl = Path(pkl)
    root = Path(data_dir) if data_dir is not None else pkl.parent
    obj = load_pkl(pkl)
    if not isinstance(obj, Mapping) or "data_list" not in obj:
        raise DataError(pkl, "not an mmdet3d v1.1 info file (no 'data_list')")
    items = obj["data_list"]
    if not 0 <= index < len(items):
        raise DataError(pkl, f"keyframe index {index} out of range (the file holds {len(items)})")
    info = items[index]
    where = f"data_list[{index}]"
    lidar = info.get("lidar_points") or {}
    lidar2ego = check_pose(_matrix(lidar.get("lidar2ego"), (4, 4), pkl, f"{where}.lidar_points.lidar2ego"),
                           pkl, "lidar2ego")
    ego2global = check_pose(_matrix(info.get("ego2global"), (4, 4), pkl, f"{where}.ego2global"), pkl,
                            "ego2global")
    images = info.get("images")
    if not isinstance(images, Mapping):
        raise DataError(pkl, f"{where} has no 'images' dict")
    cams, paths = [], []
    for name in names:
        if name not in images:
            raise DataError(pkl, f"{where}: camera {name} missing (has {sorted(images)})")
        c = images[name]
        k = _matrix(c.get("cam2img"), (3, 3), pkl, f"{where}.images.{name}.cam2img")
        if c.get("cam2ego") is not None:
            s2e = _matrix(c["cam2ego"], (4, 4), pkl, f"{where}.images.{name}.cam2ego")
        else:  # cam2ego = lidar2ego @ cam2lidar
            l2c = _matrix(c.get("lidar2cam"), (4, 4), pkl, f"{where}.images.{name}.lidar2cam")
            s2e = lidar2ego @ invert_pose(l2c)
        s2e = check_pose(s2e, pkl, f"{name} cam2ego")
        path = _find(root, str(c.get("img_path", "")), pkl, name)
        w, h = image_size(path)
        cams.append(Camera(name, k, s2e, w, h))
        paths.append(path)
    rig = CameraRig(tuple(cams)).validate(pkl)
    return Keyframe(str(info.get("token", "")), rig, tuple(paths),
                    _find(root, str(lidar.get("lidar_path", "")), pkl, "LIDAR_TOP"), lidar2ego, ego2global,
                    float(info.get("timestamp", 0.0)))


def _find(root: Path, stored: str, source: Path, what: str) -> Path:
    """``stored`` under ``root``: as given, then by its file name alone (flat demo folders)."""
    if not stored:
        raise DataError(source, f"{what}: no file path in the info")
    cand = root / stored
    if cand.is_file():
        return cand
    cand = root / Path(stored.replace("\\", "/")).name
    if cand.is_file():
        return cand
    raise DataError(source, f"{what}: file {stored!r} not found under {root}")
