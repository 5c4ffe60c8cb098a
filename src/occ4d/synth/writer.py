"""Writing a synthetic world in the Occ3D-nuScenes layout: labels, devkit info files, world.json;
and the same keyframes with occupancy flow in the OpenOcc v2 layout.

``DIR/gts/<scene_name>/<token>/labels.npz`` per keyframe (PROTOCOLS §2.1), and
``DIR/occ4d_infos_temporal_{train,val}.pkl`` in the devkit converter's layout (§2.2) with the
extras ``scene_name``, ``behaviour`` and ``split``. Tokens are hex digests of (seed, scene,
frame), so the same seed always names the same files.

OpenOcc v2 (§2.4): ``DIR/openocc_v2/<scene_name>/<token>/labels.npz`` with ``semantics`` in
OpenOcc ids (through the one mapping table; Occ3D "others", which OpenOcc lacks, becomes free)
and ``flow`` (vx, vy) m/s in the keyframe's ego frame, and ``DIR/occ4d_infos_{train,val}_occ.pkl``
named like OpenOcc's ``nuscenes_infos_{split}_occ.pkl``: the same infos with ``occ_path`` the
keyframe's ``openocc_v2/<scene>/<token>`` folder. That name is not an ``*_infos_temporal_*``
file, so a reader given DIR still finds the Occ3D infos only; give it the ``_occ.pkl`` for the
OpenOcc frames.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from occ4d.core.frame import Frame
from occ4d.core.pose import matrix_to_quat
from occ4d.io.atomic import write_json
from occ4d.io.convert import convert_frame
from occ4d.io.infos import devkit_info, save_devkit_infos, save_pkl
from occ4d.io.occ3d import save_labels
from occ4d.io.openocc import save_openocc
from occ4d.synth.rig import camera_rig, cams_info, lidar2ego

VERSION = "occ4d-synth-v1"
INFO_NAME = "occ4d_infos_temporal_{split}.pkl"
OPENOCC_INFO_NAME = "occ4d_infos_{split}_occ.pkl"
BASE_TIMESTAMP = 1_700_000_000_000_000  # µs; scenes are an hour apart, keyframes 0.5 s apart
KEYFRAME_US = 500_000


def token(seed: int, scene: int, frame: int | str, what: str = "sample") -> str:
    """A 32-hex-digit token, deterministic in (seed, scene, frame, what)."""
    return hashlib.sha256(f"occ4d-synth/{what}/{seed}/{scene}/{frame}".encode()).hexdigest()[:32]


def scene_name(scene: int) -> str:
    return f"scene-{scene:04d}"


def timestamp(scene: int, frame: int) -> int:
    return BASE_TIMESTAMP + scene * 3_600_000_000 + frame * KEYFRAME_US


def label_path(scene: int, tok: str) -> str:
    """Path of a keyframe's labels relative to the dataset root (``occ_gt_path``)."""
    return f"gts/{scene_name(scene)}/{tok}/labels.npz"


def openocc_folder(scene: int, tok: str) -> str:
    """Folder of a keyframe's OpenOcc v2 labels relative to the dataset root (``occ_path``)."""
    return f"openocc_v2/{scene_name(scene)}/{tok}"


def write_labels(root: Path, frame: Frame, scene: int) -> None:
    save_labels(root / label_path(scene, frame.token), frame)


def write_openocc(root: Path, frame: Frame, scene: int) -> None:
    """The keyframe's OpenOcc v2 labels: semantics relabelled to OpenOcc ids, and its flow."""
    if frame.flow is None:
        raise ValueError(f"keyframe {frame.token} has no flow to write in the OpenOcc v2 layout")
    openocc, _ = convert_frame(frame, "openocc")  # same grid: an exact relabel, flow kept
    save_openocc(root / openocc_folder(scene, frame.token) / "labels.npz", openocc)


def can_bus(ego2global: np.ndarray, speed: float, accel: float, yaw_rate: float) -> np.ndarray:
    """18 floats as the nuScenes CAN pose message: position (3), orientation wxyz (4), acceleration
    (3, ego frame, with gravity on z), rotation rate (3), velocity (3, ego frame), then 2 zeros
    that loaders fill with the patch angle."""
    out = np.zeros(18)
    out[0:3] = ego2global[:3, 3]
    out[3:7] = matrix_to_quat(ego2global[:3, :3])
    out[7:10] = (accel, speed * yaw_rate, 9.80665)
    out[12] = yaw_rate
    out[13] = speed
    return out


def scene_infos(
    seed: int, scene: int, poses: np.ndarray, speeds: np.ndarray, behaviour: str, split: str
) -> list[dict]:
    """Devkit infos of one scene's keyframes from their ego poses (T, 4, 4) and speeds (T,)."""
    n = len(poses)
    yaw = np.unwrap(np.arctan2(poses[:, 1, 0], poses[:, 0, 0]))
    dt = KEYFRAME_US / 1e6
    accel = np.gradient(speeds, dt) if n > 1 else np.zeros(n)
    yaw_rate = np.gradient(yaw, dt) if n > 1 else np.zeros(n)
    rig, l2e = camera_rig(), lidar2ego()
    toks = [token(seed, scene, f) for f in range(n)]
    infos = []
    for f in range(n):
        ts = timestamp(scene, f)
        cams = cams_info(rig, poses[f], ts, lambda cam, f=f: token(seed, scene, f, cam))
        infos.append(
            devkit_info(
                toks[f],
                token(seed, scene, "scene", "scene"),
                f,
                ts,
                poses[f],
                label_path(scene, toks[f]),
                prev=toks[f - 1] if f > 0 else "",
                next=toks[f + 1] if f + 1 < n else "",
                lidar2ego=l2e,
                cams=cams,
                can_bus=can_bus(poses[f], float(speeds[f]), float(accel[f]), float(yaw_rate[f])),
                scene_name=scene_name(scene),
                behaviour=behaviour,
                split=split,
            )
        )
    return infos


def write_infos(root: Path, split: str, infos: list[dict]) -> Path:
    path = root / INFO_NAME.format(split=split)
    save_devkit_infos(path, infos, VERSION)
    return path


def openocc_infos(infos: list[dict]) -> list[dict]:
    """The devkit infos pointing at the OpenOcc v2 labels: ``occ_path`` (a folder, the loader
    appends labels.npz, PROTOCOLS §2.2) instead of ``occ_gt_path``; every other key kept."""
    out = []
    for info in infos:
        entry = {k: v for k, v in info.items() if k != "occ_gt_path"}
        entry["occ_path"] = f"openocc_v2/{info['scene_name']}/{info['token']}"
        out.append(entry)
    return out


def write_openocc_infos(root: Path, split: str, infos: list[dict]) -> Path:
    """``openocc_infos(infos)`` as ``{"infos": [...], "metadata": {"version"}}``, the devkit file's
    layout (``save_devkit_infos`` itself insists on ``occ_gt_path``, which these lack)."""
    path = root / OPENOCC_INFO_NAME.format(split=split)
    save_pkl(path, {"infos": openocc_infos(infos), "metadata": {"version": VERSION}})
    return path


def write_world_json(root: Path, record: dict) -> None:
    write_json(root / "world.json", record)
