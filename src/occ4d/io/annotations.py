"""Occ3D's ``annotations.json``: the frame list that ships with the Occ3D-nuScenes download.

PROTOCOLS §2.1: ``train_split`` and ``val_split`` list scene names, and
``scene_infos[scene][token]`` = {``timestamp`` (µs), ``camera_sensor``, ``ego_pose``
{``translation``, ``rotation`` (w, x, y, z)}, ``gt_path``, ``prev``, ``next``}. The devkit converter
copies ``ego_pose`` and ``gt_path`` into its info files (as ``ego2global_*`` and ``occ_gt_path``), so
:func:`annotation_infos` renames them the same way: a data root without an info ``.pkl`` is then
indexed with real poses and timestamps by the same code that reads info files. The file holds no
LiDAR calibration, so ``lidar2ego`` stays unknown (identity).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from occ4d.core.errors import DataError

ANNOTATIONS_NAME = "annotations.json"


def load_annotations(path: str | Path) -> dict[str, Any]:
    """Parse an ``annotations.json``; a missing or malformed file is a DataError naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(path, f"unreadable or truncated JSON ({type(e).__name__}: {e})") from e
    if not isinstance(data, dict):
        raise DataError(path, f"expected a JSON object, got {type(data).__name__}")
    return data


def split_scenes(data: dict[str, Any], split: str, path: str | Path) -> set[str]:
    """Scene names listed under ``{split}_split``."""
    key = f"{split}_split"
    scenes = data.get(key)
    if not isinstance(scenes, list):
        found = sorted(k for k in data if k.endswith("_split"))
        raise DataError(path, f"no list {key!r} (the file has {found})")
    return {str(s) for s in scenes}


def annotation_infos(data: dict[str, Any], path: str | Path,
                     split: str | None = None) -> list[tuple[str, dict]]:
    """(scene, info) pairs in devkit key names, one per frame of ``scene_infos``, for ``split`` (all
    when None). Each info carries ``split`` when the file's split lists name its scene. Missing or
    malformed fields are left for the info reader to report (it names this file and the token)."""
    scene_infos = data.get("scene_infos")
    if not isinstance(scene_infos, dict):
        raise DataError(path, "no 'scene_infos' object (expected scene -> token -> frame)")
    wanted = split_scenes(data, split, path) if split is not None else None
    tags = {}
    for key in sorted(k for k in data if k.endswith("_split") and isinstance(data[k], list)):
        tags.update({str(s): key[: -len("_split")] for s in data[key]})
    out = []
    for scene, frames in scene_infos.items():
        if wanted is not None and scene not in wanted:
            continue
        if not isinstance(frames, dict):
            raise DataError(path, f"scene_infos[{scene!r}] must map tokens to frames")
        for token, frame in frames.items():
            if not isinstance(frame, dict):
                raise DataError(path, f"scene_infos[{scene!r}][{token!r}] is not an object")
            info = {k: v for k, v in frame.items() if k not in ("ego_pose", "gt_path")}
            info["token"] = str(token)
            info["scene_name"] = str(scene)
            pose = frame.get("ego_pose")
            if isinstance(pose, dict):
                if "translation" in pose:
                    info["ego2global_translation"] = pose["translation"]
                if "rotation" in pose:
                    info["ego2global_rotation"] = pose["rotation"]
            if "gt_path" in frame:
                info["occ_gt_path"] = frame["gt_path"]
            if scene in tags:
                info["split"] = tags[scene]
            out.append((str(scene), info))
    return out
