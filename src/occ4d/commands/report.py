"""``occ4d report RUN_DIR --out report.html``: one offline HTML page summarising a training run."""

from __future__ import annotations

from pathlib import Path

from tyro.conf import Positional


def report(run_dir: Positional[Path], out: Path = Path("report.html"), max_media: int = 12,
           max_clips: int = 4, title: str | None = None) -> None:
    """Write a run report: metric tables, training curves, samples (pictures, videos, clips), checkpoints.

    Everything is embedded (plotly's script, pictures and videos as data URIs), so the page opens
    from disk without a network.

    Args:
        run_dir: the run folder (metrics.jsonl, config.json, checkpoints, samples).
        out: the HTML file to write.
        max_media: at most this many pictures and videos are embedded.
        max_clips: at most this many clip files are rendered as animated top-down GIFs.
        title: page title (default: the run folder's name).
    """
    from occ4d.core.errors import DataError
    from occ4d.vis.report import save_report

    try:
        save_report(out, run_dir, max_media=max_media, max_clips=max_clips, title=title)
    except DataError as e:
        raise SystemExit(f"error: {e}") from e
    print(f"wrote {out}")
