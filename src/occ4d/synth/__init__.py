"""The procedural 4D driving world: a town, its traffic, the ego's manoeuvres and the sensors'
labels, written in the Occ3D-nuScenes layout (``occ4d synth``)."""

from occ4d.synth.world import generate, simulate_scene

__all__ = ["generate", "simulate_scene"]
