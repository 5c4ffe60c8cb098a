"""Surround-camera samples for perception: images resized and cropped with their intrinsics kept
consistent, depth targets, labels, and optional past frames for temporal fusion.

Image transform (BEVDet's ``img_transform`` without flip or rotation): resize by
``scale = out_width / image_width * r`` with r in ``resize_range``, then crop an ``out``-sized
window, by default centred horizontally and keeping the bottom of the image (the sky carries no
occupancy), jittered by up to ``crop_jitter`` of the spare pixels. The same transform is applied
to the image, its depth and semantics maps (nearest) and to the intrinsics through
:meth:`Camera.scaled`, so a point projects to the same content before and after. Training draws
r and the jitter from a generator seeded by (seed, sample index); evaluation uses r = 1 and no
jitter. Nothing reads global random state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from occ4d.core.camera import Camera, CameraRig
from occ4d.core.errors import DataError
from occ4d.core.pose import invert_pose
from occ4d.data.index import FrameRecord, group_by_scene, load_frame, openocc_twins, resolve_path
from occ4d.io.images import image_size, load_camera_targets, load_image, rig_from_cams

# ImageNet statistics, the usual normalisation of BEVDet-family inputs.
MEAN = np.array([123.675, 116.28, 103.53], np.float32)
STD = np.array([58.395, 57.12, 57.375], np.float32)


@dataclass(frozen=True)
class ViewTransform:
    """Resize factor and crop offset (pixels, after resizing) of one camera."""

    scale: float
    crop_x: int
    crop_y: int


def draw_transform(src_wh: tuple[int, int], out_wh: tuple[int, int],
                   resize_range: tuple[float, float] = (1.0, 1.0), crop_jitter: float = 0.0,
                   rng: np.random.Generator | None = None) -> ViewTransform:
    """The transform of one image of size ``src_wh`` to ``out_wh``; random only when ``rng`` is given."""
    (sw, sh), (ow, oh) = src_wh, out_wh
    r = 1.0 if rng is None else float(rng.uniform(*resize_range))
    scale = ow / sw * r
    nw, nh = int(round(sw * scale)), int(round(sh * scale))
    cx, cy = (nw - ow) / 2.0, float(nh - oh)
    if rng is not None and crop_jitter > 0:
        cx += float(rng.uniform(-1, 1)) * crop_jitter * abs(nw - ow) / 2.0
        cy -= float(rng.uniform(0, 1)) * crop_jitter * max(nh - oh, 0)
    return ViewTransform(scale, int(round(cx)), int(round(cy)))


def apply_transform(image: np.ndarray, t: ViewTransform, out_wh: tuple[int, int],
                    nearest: bool = False) -> np.ndarray:
    """Resize ``image`` (H, W[, C]) by ``t.scale`` and crop ``out_wh`` at (crop_x, crop_y); pixels
    outside the resized image are 0."""
    from PIL import Image

    h, w = image.shape[:2]
    nw, nh = int(round(w * t.scale)), int(round(h * t.scale))
    mode = "F" if image.dtype == np.float32 else None
    im = Image.fromarray(image, mode=mode) if mode else Image.fromarray(image)
    im = im.resize((nw, nh), Image.NEAREST if nearest else Image.BILINEAR)
    ow, oh = out_wh
    im = im.crop((t.crop_x, t.crop_y, t.crop_x + ow, t.crop_y + oh))
    return np.asarray(im).copy()


def transform_camera(cam: Camera, t: ViewTransform, out_wh: tuple[int, int]) -> Camera:
    """``cam`` as seen through the transformed image (intrinsics scaled, principal point shifted)."""
    return cam.scaled(t.scale, t.scale, t.crop_x, t.crop_y, width=out_wh[0], height=out_wh[1])


def normalise(images: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) uint8 -> (..., 3, H, W) float32, ImageNet-normalised."""
    x = (images.astype(np.float32) - MEAN) / STD
    return np.moveaxis(x, -1, -3).copy()


def prepare_views(images: np.ndarray, rig: CameraRig, out_wh: tuple[int, int],
                  transforms: Sequence[ViewTransform] | None = None) -> dict[str, torch.Tensor]:
    """Network inputs from one keyframe's images (N, H, W, 3) uint8 and rig, with the evaluation
    transform unless ``transforms`` (one per camera) are given.

    Returns ``images`` (N, 3, H', W') float32, ``intrinsics`` (N, 3, 3), ``sensor2ego`` (N, 4, 4)."""
    if len(images) != len(rig):
        raise ValueError(f"{len(images)} images for a rig of {len(rig)} cameras")
    outs, ks, poses = [], [], []
    for n, cam in enumerate(rig.cameras):
        h, w = images[n].shape[:2]
        if (w, h) != (cam.width, cam.height):
            cam = cam.scaled(w / cam.width, h / cam.height, width=w, height=h)
        t = transforms[n] if transforms is not None else draw_transform((w, h), out_wh)
        outs.append(apply_transform(images[n], t, out_wh))
        c = transform_camera(cam, t, out_wh)
        ks.append(c.intrinsic)
        poses.append(c.sensor2ego)
    return {"images": torch.from_numpy(normalise(np.stack(outs))),
            "intrinsics": torch.from_numpy(np.stack(ks).astype(np.float32)),
            "sensor2ego": torch.from_numpy(np.stack(poses).astype(np.float32))}


class CameraDataset(Dataset):
    """Keyframes with their six camera images, for training and evaluating perception.

    An item: ``images`` (T, N, 3, H, W) float32 with the current frame last (T = history + 1;
    missing past frames at a scene start repeat the first frame), ``intrinsics`` (T, N, 3, 3),
    ``sensor2ego`` (T, N, 4, 4), ``past2current`` (T, 4, 4) ego-to-ego transforms into the
    current frame, ``semantics`` (X, Y, Z) int64, ``mask_camera`` (X, Y, Z) bool, ``depth``
    (N, H, W) float32 of the current frame (0 = no target; zeros when the data has no depth
    files), ``image_semantics`` (N, H, W) uint8 of the current frame (255 = no target; all 255
    without depth files), ``index`` and ``token``; with ``with_flow``, also ``flow`` (X, Y, Z, 2)
    float32 m/s from the keyframe's OpenOcc v2 labels beside its Occ3D ones, when they exist
    (``occ4d synth`` writes both).
    """

    def __init__(self, records: Sequence[FrameRecord], root: str | Path, out_wh: tuple[int, int],
                 history: int = 0, train: bool = False, seed: int = 0,
                 resize_range: tuple[float, float] = (1.0, 1.0), crop_jitter: float = 0.0,
                 with_depth: bool = True, with_flow: bool = False):
        self.root = Path(root)
        self.out_wh = (int(out_wh[0]), int(out_wh[1]))
        self.history, self.train, self.seed = int(history), bool(train), int(seed)
        self.resize_range, self.crop_jitter = tuple(resize_range), float(crop_jitter)
        self.with_depth, self.with_flow = with_depth, with_flow
        self.frames: list[list[FrameRecord]] = []  # per item: history + current records
        for scene in group_by_scene(records).values():
            for i in range(len(scene)):
                self.frames.append([scene[max(i - k, 0)] for k in range(self.history, -1, -1)])
        if not self.frames:
            raise DataError(self.root, "no keyframes to load")

    def __len__(self) -> int:
        return len(self.frames)

    def _views(self, record: FrameRecord) -> tuple[list[Path], CameraRig]:
        cams = record.extras.get("cams")
        if not isinstance(cams, dict):
            raise DataError(record.path, f"keyframe {record.token} has no 'cams' in its info")
        paths, sizes = [], {}
        for name, c in cams.items():
            stored = str(c.get("data_path", "")) if isinstance(c, dict) else ""
            if not stored:
                raise DataError(record.path, f"keyframe {record.token}: {name} has no data_path "
                                             "(write images with `occ4d synth --cameras`)")
            p = resolve_path(stored, self.root)
            paths.append(p)
            sizes[name] = image_size(p)
        rig = rig_from_cams(cams, sizes, record.path, tuple(cams))
        return paths, rig

    def __getitem__(self, index: int) -> dict:
        recs = self.frames[index]
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, index])) if self.train else None
        cur = recs[-1]
        paths, rig = self._views(cur)
        transforms = [draw_transform((c.width, c.height), self.out_wh, self.resize_range, self.crop_jitter,
                                     rng) for c in rig.cameras]
        imgs, ks, poses, warps = [], [], [], []
        g2cur = invert_pose(cur.ego2global)
        for rec in recs:
            p, r = (paths, rig) if rec is cur else self._views(rec)
            views = prepare_views(np.stack([load_image(x) for x in p]), r, self.out_wh, transforms)
            imgs.append(views["images"])
            ks.append(views["intrinsics"])
            poses.append(views["sensor2ego"])
            warps.append(torch.from_numpy((g2cur @ rec.ego2global).astype(np.float32)))
        frame = load_frame(cur)
        item = {"images": torch.stack(imgs), "intrinsics": torch.stack(ks), "sensor2ego": torch.stack(poses),
                "past2current": torch.stack(warps),
                "semantics": torch.from_numpy(frame.semantics.astype(np.int64)),
                "index": index, "token": cur.token}
        if frame.mask_camera is not None:
            item["mask_camera"] = torch.from_numpy(frame.mask_camera.astype(bool))
        depth = np.zeros((len(rig), self.out_wh[1], self.out_wh[0]), np.float32)
        sem = np.full(depth.shape, 255, np.uint8)
        if self.with_depth:
            for n, (p, cam) in enumerate(zip(paths, rig.cameras, strict=True)):
                aux = p.with_suffix(".npz")
                if aux.is_file():
                    d, s = load_camera_targets(aux, (cam.height, cam.width))
                    depth[n] = apply_transform(d, transforms[n], self.out_wh, nearest=True)
                    # pixels the crop takes from outside the image are 0 after the transform: no target
                    inside = apply_transform(np.ones_like(s), transforms[n], self.out_wh, nearest=True)
                    cropped = apply_transform(s, transforms[n], self.out_wh, nearest=True)
                    sem[n] = np.where(inside > 0, cropped, 255)
        item["depth"] = torch.from_numpy(depth)
        item["image_semantics"] = torch.from_numpy(sem)
        if self.with_flow and (twin := openocc_twins([cur])) is not None:
            flow = load_frame(twin[0]).flow
            if flow is None:
                raise DataError(twin[0].path, "OpenOcc v2 labels without a 'flow' array")
            item["flow"] = torch.from_numpy(np.asarray(flow, np.float32))
        return item


def collate_views(items: list[dict]) -> dict:
    """Stack tensors; keep ``token`` as a list."""
    out = {}
    for key in items[0]:
        vals = [it[key] for it in items]
        if torch.is_tensor(vals[0]):
            out[key] = torch.stack(vals)
        elif isinstance(vals[0], int):
            out[key] = torch.tensor(vals)
        else:
            out[key] = vals
    return out
