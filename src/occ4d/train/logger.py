"""Run logging: every logged figure as one JSON line, optionally mirrored to TensorBoard.

``metrics.jsonl`` gets one object per call: ``{"kind": "train"|"eval", "step", "samples",
"time", ...figures}``. Appending line by line keeps the file valid after a kill; on resume the
lines beyond the resumed step are dropped, so the log reads as one unbroken run.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from occ4d.io.atomic import write_text


class RunLogger:
    def __init__(self, run_dir: str | Path, tensorboard: bool = False, resume_step: int | None = None):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.exists():
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and _step_of(line) <= resume_step]
            write_text(self.path, "".join(line + "\n" for line in kept))
        elif resume_step is None:
            write_text(self.path, "")
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(Path(run_dir) / "tb"))
            except ImportError:
                print("tensorboard is not installed: logging to metrics.jsonl only", flush=True)

    def log(self, kind: str, step: int, samples: int, values: dict[str, float]) -> None:
        clean = {k: (float(v) if math.isfinite(float(v)) else None) for k, v in values.items()}
        record = {"kind": kind, "step": step, "samples": samples, "time": round(time.time(), 3), **clean}
        with self.path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(f"{kind}/{k}", float(v), samples)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _step_of(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
        return 1 << 62  # an unreadable (half-written) line is dropped on resume


def read_log(run_dir: str | Path) -> list[dict]:
    """All records of a run's metrics.jsonl."""
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
