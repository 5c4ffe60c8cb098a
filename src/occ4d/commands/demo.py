"""``occ4d demo``: the whole system end to end on the built-in synthetic world."""

from __future__ import annotations


def demo(out: str = "demo_out", seed: int = 0) -> None:
    """Synthesize a small world, summarise it and write top-down PNG frames.

    Args:
        out: folder for everything the demo writes.
        seed: seed of the synthetic world (same seed, same bytes).
    """
    raise SystemExit("the demo is assembled once the synthetic world lands")
