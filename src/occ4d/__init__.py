"""occ4d: 4D semantic occupancy for autonomous driving.

The package follows one left-to-right flow (see DESIGN in the README): readers produce typed
frames and clips, tokenizers compress them, world models forecast or generate latents, and
metrics and renders consume voxels.
"""

__version__ = "0.1.0"
