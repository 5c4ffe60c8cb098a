"""A trained perception model's predictions as the input of something else.

:class:`PerceivedHistory` / :func:`perceived_history` give a forecasting clip dataset a history
predicted from cameras (the camera-input world model of OccWorld's "-F" rows);
:func:`predict_keyframe` predicts one keyframe from its images and rig (``occ4d perceive``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from occ4d.core.errors import DataError
from occ4d.data.camera_dataset import CameraDataset
from occ4d.models.perception.config import PerceptionConfig
from occ4d.models.perception.model import CameraOccupancy
from occ4d.models.perception.recipe import data_root


class PerceivedHistory(Dataset):
    """A forecasting clip dataset (occ4d.data.dataset.ClipDataset) whose ``past`` history frames
    are replaced by a perception model's predictions from each keyframe's cameras: the
    camera-input world model of OccWorld's "-F" rows. Future frames stay ground truth (they are
    the targets); each keyframe is predicted once and kept."""

    def __init__(self, clips: Dataset, cameras: CameraDataset, model: CameraOccupancy, past: int,
                 device: str | torch.device = "cpu"):
        self.clips, self.cameras, self.model, self.past = clips, cameras, model, int(past)
        self.device = torch.device(device)
        self.by_token = {frames[-1].token: i for i, frames in enumerate(cameras.frames)}
        self._cache: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.clips)

    def predict(self, token: str) -> torch.Tensor:
        """Predicted labels (X, Y, Z) uint8 of keyframe ``token``."""
        if token not in self._cache:
            if token not in self.by_token:
                raise DataError(token, "keyframe has no camera images in the perception dataset")
            item = self.cameras[self.by_token[token]]
            keys = ("images", "intrinsics", "sensor2ego", "past2current")
            inputs = [item[k][None].to(self.device) for k in keys]
            self._cache[token] = self.model.predict(*inputs)[0].cpu()
        return self._cache[token]

    def remember(self, token: str, labels: torch.Tensor) -> None:
        """Use ``labels`` (X, Y, Z) as the prediction of ``token`` (e.g. read back from a saved run)."""
        self._cache[token] = labels.to(torch.uint8).cpu()

    def __getitem__(self, index: int) -> dict:
        item = dict(self.clips[index])
        sem = item["semantics"].clone()
        for t, token in enumerate(item["tokens"][: self.past]):
            sem[t] = self.predict(token).to(sem.dtype)
        item["semantics"] = sem
        return item


def perceived_history(run: str | Path, clips: Dataset, data: str | Path, records, past: int,
                      device: str = "cpu") -> PerceivedHistory:
    """Wrap ``clips`` so its history comes from the perception run ``run`` (evaluation transform)."""
    from occ4d.train.registry import load_model

    model, cfg, _ = load_model(run, device=device)
    if cfg.model_name != "perception":
        raise DataError(run, f"{run} is a {cfg.model_name!r} run, not a perception run")
    m: PerceptionConfig = cfg.model
    cams = CameraDataset(records, data_root(data), m.image_size, history=m.history, with_depth=False)
    return PerceivedHistory(clips, cams, model, past, device)


def predict_keyframe(model: CameraOccupancy, images: np.ndarray, rig, device: str | torch.device = "cpu"
                     ) -> np.ndarray:
    """Labels (200, 200, 16) uint8 from one keyframe's images (N, H, W, 3) and calibrated rig
    (real or synthetic), with the evaluation transform of the model's input size. A model with
    temporal fusion sees the frame repeated as its own history (no past frames are given)."""
    return model.predict(*_keyframe_inputs(model, images, rig, device))[0].cpu().numpy()


def predict_keyframe_flow(model: CameraOccupancy, images: np.ndarray, rig, device: str | torch.device = "cpu"
                          ) -> tuple[np.ndarray, np.ndarray]:
    """(labels (200, 200, 16) uint8, flow (200, 200, 16, 2) float32 m/s) as :func:`predict_keyframe`,
    from a model with a flow head; with no past frames given, a temporal model sees a still scene."""
    labels, flow = model.predict_flow(*_keyframe_inputs(model, images, rig, device))
    return labels[0].cpu().numpy(), flow[0].cpu().numpy()


def _keyframe_inputs(model: CameraOccupancy, images: np.ndarray, rig, device) -> list[torch.Tensor]:
    """The model's four inputs for one keyframe, repeated as its own history."""
    from occ4d.data.camera_dataset import prepare_views

    views = prepare_views(images, rig, model.config.image_size)
    t = model.config.history + 1
    dev = torch.device(device)
    inputs = [views[k][None, None].expand(1, t, *views[k].shape).to(dev)
              for k in ("images", "intrinsics", "sensor2ego")]
    return [*inputs, torch.eye(4, device=dev).expand(1, t, 4, 4)]
