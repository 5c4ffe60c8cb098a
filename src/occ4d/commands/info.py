"""``occ4d info DIR``: what a dataset holds (scenes, frames, classes, masks, ego motion, behaviours)."""

from __future__ import annotations

from pathlib import Path

from tyro.conf import Positional


def info(source: Positional[Path], split: str | None = None, skip_bad: bool = False,
         progress: bool = True) -> None:
    """Summarise a dataset: a data root (info file, Occ3D annotations.json or gts/ tree) or an info .pkl.

    Args:
        source: data root folder or info .pkl.
        split: which *_infos_temporal_{split}.pkl to read (all splits when omitted).
        skip_bad: log and count bad info entries and unreadable frames instead of stopping.
        progress: show a progress bar while reading frames.
    """
    from occ4d.data.index import scan_index
    from occ4d.data.summary import format_summary, summarize

    scan = scan_index(source, split=split, skip_bad=skip_bad)
    summary = summarize(scan.records, source=str(source) + (f" (split {split})" if split else ""),
                        skip_bad=skip_bad, bad=scan.skipped, progress=progress)
    print(format_summary(summary))
