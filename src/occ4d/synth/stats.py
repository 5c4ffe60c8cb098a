"""Class histograms of a synthetic world beside real Occ3D-nuScenes frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from occ4d.core.vocab import OCC3D_VOCAB
from occ4d.io.occ3d import load_labels


def histogram(root: str | Path) -> dict[str, int]:
    """Voxels per Occ3D class over every ``labels.npz`` under ``root`` (validated on load)."""
    counts = np.zeros(OCC3D_VOCAB.num_classes, np.int64)
    for path in sorted(Path(root).rglob("*.npz")):
        counts += np.bincount(load_labels(path).semantics.ravel(), minlength=OCC3D_VOCAB.num_classes)
    return {name: int(c) for name, c in zip(OCC3D_VOCAB.names, counts, strict=True)}


def real_histogram(shared_data: Path) -> dict[str, int] | None:
    """Histogram of the real Occ3D-nuScenes frames in ``shared_data/occ3d-nuscenes`` (None if absent)."""
    folder = Path(shared_data) / "occ3d-nuscenes"
    if not folder.is_dir() or not any(folder.rglob("*.npz")):
        return None
    return histogram(folder)


def format_histograms(synth: dict[str, int], real: dict[str, int] | None = None) -> str:
    """A text table: per class, the percentage of voxels in the synthetic world and in real frames."""
    total_s = max(sum(synth.values()), 1)
    total_r = max(sum(real.values()), 1) if real else 1
    head = f"{'class':<22}{'synthetic %':>12}" + (f"{'real Occ3D %':>14}" if real else "")
    lines = [head, "-" * len(head)]
    for name in OCC3D_VOCAB.names:
        row = f"{name:<22}{100 * synth.get(name, 0) / total_s:>12.3f}"
        if real:
            row += f"{100 * real.get(name, 0) / total_r:>14.3f}"
        lines.append(row)
    if not real:
        lines.append("(no real Occ3D frames found to compare with)")
    return "\n".join(lines)
