"""Clip windows over a frame index: ``past`` frames (incl. the current one) + ``future`` frames.

Windows are cut per scene from its keyframes in timestamp order, so a window never crosses a
scene boundary; there is no randomness anywhere (shuffling is the sampler's job,
``occ4d.data.sampler``). Window w of a scene with n frames covers frames
``start, start + frame_step, ...`` with ``start = w * stride``; a scene shorter than one window
gives none.

An item is a dict:

- ``semantics`` uint8 (T, X, Y, Z); ``mask_camera`` / ``mask_lidar`` bool (T, X, Y, Z) when
  ``with_masks`` and every frame has them;
- ``trajectory`` float32 (T, 3): x, y, yaw of every frame in the ego frame of the current
  frame (index ``past - 1``), whose row is (0, 0, 0);
- ``poses`` float64 (T, 4, 4) ego-to-global; ``timestamps`` int64 (T,) µs;
- ``scene`` str, ``tokens`` list[str], ``index`` int (the window's index in this dataset).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from occ4d.core.frame import Frame
from occ4d.data.index import FrameRecord, group_by_scene, load_frame
from occ4d.data.trajectories import ego_trajectory


@dataclass(frozen=True)
class Window:
    """One clip: the scene and the positions of its frames in that scene's time-ordered records."""

    scene: str
    frames: tuple[int, ...]


class FrameCache:
    """Decoded frames kept in memory, zlib-compressed (an Occ3D frame is ~640 kB raw, tens of kB
    compressed), so an epoch rereads no files. Each DataLoader worker holds its own cache."""

    def __init__(self) -> None:
        self._store: dict[str, tuple] = {}

    def __len__(self) -> int:
        return len(self._store)

    @property
    def nbytes(self) -> int:
        """Compressed bytes held."""
        return sum(len(b) for entry in self._store.values() for b in entry[3:] if b is not None)

    def get(self, record: FrameRecord) -> Frame:
        key = str(record.path)
        entry = self._store.get(key)
        if entry is None:
            frame = load_frame(record)
            self._store[key] = (
                frame.vocab, frame.grid, frame.source, zlib.compress(frame.semantics.tobytes(), 1),
                _pack_bits(frame.mask_camera), _pack_bits(frame.mask_lidar),
                None if frame.flow is None else zlib.compress(frame.flow.tobytes(), 1),
            )
            return frame
        vocab, grid, source, sem, cam, lidar, flow = entry
        shape = grid.shape
        if flow is not None:
            flow = np.frombuffer(zlib.decompress(flow), np.float32).reshape(*shape, 2).copy()
        return Frame(
            semantics=np.frombuffer(zlib.decompress(sem), np.uint8).reshape(shape).copy(),
            vocab=vocab, grid=grid, flow=flow,
            mask_camera=_unpack_bits(cam, shape), mask_lidar=_unpack_bits(lidar, shape),
            ego2global=record.ego2global, timestamp=int(record.timestamp), scene=record.scene,
            token=record.token, source=source,
        )


def _pack_bits(mask: np.ndarray | None) -> bytes | None:
    return None if mask is None else zlib.compress(np.packbits(mask).tobytes(), 1)


def _unpack_bits(data: bytes | None, shape: tuple[int, ...]) -> np.ndarray | None:
    if data is None:
        return None
    bits = np.unpackbits(np.frombuffer(zlib.decompress(data), np.uint8), count=int(np.prod(shape)))
    return bits.reshape(shape).astype(bool)


class ClipDataset(torch.utils.data.Dataset):
    """Deterministic clip windows over ``records`` (a ``load_index`` result or any FrameRecords)."""

    def __init__(self, records: Sequence[FrameRecord], past: int, future: int, stride: int = 1,
                 with_masks: bool = True, frame_step: int = 1, cache: bool = False, hz: float = 2.0):
        if past < 1 or future < 0 or stride < 1 or frame_step < 1:
            raise ValueError(f"need past >= 1, future >= 0, stride >= 1, frame_step >= 1; "
                             f"got {past}, {future}, {stride}, {frame_step}")
        self.past, self.future, self.stride, self.frame_step = past, future, stride, frame_step
        self.with_masks, self.hz = with_masks, hz / frame_step
        self.scenes = group_by_scene(records)
        span = (past + future - 1) * frame_step + 1
        self.windows: list[Window] = []
        for scene, recs in self.scenes.items():
            for start in range(0, len(recs) - span + 1, stride):
                self.windows.append(Window(scene, tuple(range(start, start + span, frame_step))))
        self.cache = FrameCache() if cache else None

    @property
    def length(self) -> int:
        """Frames per window (past + future)."""
        return self.past + self.future

    def __len__(self) -> int:
        return len(self.windows)

    def records(self, index: int) -> list[FrameRecord]:
        """The window's records in time order (no file is read)."""
        w = self.windows[index]
        recs = self.scenes[w.scene]
        return [recs[i] for i in w.frames]

    def trajectory(self, index: int) -> np.ndarray:
        """(T, 3) float64 x, y, yaw relative to the current frame, from the poses alone."""
        return ego_trajectory(self.records(index), self.past - 1, self.hz).xyyaw

    def _frame(self, record: FrameRecord) -> Frame:
        return self.cache.get(record) if self.cache is not None else load_frame(record)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"window {index} outside 0..{len(self) - 1}")
        recs = self.records(index)
        frames = [self._frame(r) for r in recs]
        item = {
            "semantics": torch.from_numpy(np.stack([f.semantics for f in frames])),
            "trajectory": torch.from_numpy(self.trajectory(index).astype(np.float32)),
            "poses": torch.from_numpy(np.stack([r.ego2global for r in recs]).astype(np.float64)),
            "timestamps": torch.tensor([r.timestamp for r in recs], dtype=torch.int64),
            "scene": recs[0].scene,
            "tokens": [r.token for r in recs],
            "index": index,
        }
        if self.with_masks:
            for name in ("mask_camera", "mask_lidar"):
                masks = [getattr(f, name) for f in frames]
                if all(m is not None for m in masks):
                    item[name] = torch.from_numpy(np.stack(masks))
        return item


def collate_clips(items: list[dict]) -> dict:
    """Batch items: tensors stacked to (B, T, ...); ``scene`` and ``tokens`` as lists, ``index`` (B,).

    A mask is kept only when every item has it, so a batch never mixes masked and unmasked clips.
    """
    if not items:
        raise ValueError("cannot collate an empty batch")
    batch: dict = {}
    for key, value in items[0].items():
        if isinstance(value, torch.Tensor):
            if all(key in it for it in items):
                batch[key] = torch.stack([it[key] for it in items])
        elif key == "index":
            batch[key] = torch.tensor([it[key] for it in items], dtype=torch.int64)
        else:
            batch[key] = [it[key] for it in items]
    return batch
