"""Renders, videos, the interactive HTML viewer and run reports.

- ``topdown``: numpy bird's-eye images (fast; thumbnails and fallback);
- ``voxels``: 3D voxel renders with pyvista, off screen;
- ``compare``: ground truth | prediction | error panels with mIoU, time strips;
- ``video``: GIF / MP4 of clips with the ego path and time;
- ``viewer``: one self-contained three.js HTML file;
- ``report``: the HTML report of a training run;
- ``inputs``: every input ``occ4d render`` accepts, read as one Sequence.

Only the numpy top-down helpers are imported here; the rest load pyvista, plotly or torch.
"""

from occ4d.vis.topdown import save_png, topdown_labels, topdown_rgb

__all__ = ["save_png", "topdown_labels", "topdown_rgb"]
