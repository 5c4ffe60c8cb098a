"""What every ``occ4d eval`` handler shares: its arguments, progress and number formatting."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class EvalArgs:
    pred: Path
    gt: Path
    mask: str = "camera"
    protocol: str | None = None
    allow_missing: bool = False
    split: str | None = None
    backend: str = "auto"
    device: str = "cpu"
    notes: list[str] = field(default_factory=list)
    ckpt: Path | None = None
    regions: bool = False


def progress(items, label: str):
    """Progress over the items of a scan (shown from 50 items on; occ4d.core.progress)."""
    from occ4d.core.progress import Progress

    return Progress(items, desc=label, unit="file", enabled=len(items) >= 50, leave=False)


def fmt(v) -> str:
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"
