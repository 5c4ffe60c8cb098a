"""The one exception type for bad input: it always names the source and the problem."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """Raised for malformed input data.

    The message always starts with the file (or other source) that was being read, so a user
    scanning thousands of frames knows which one to look at.
    """

    def __init__(self, source: str | Path | None, problem: str):
        self.source = str(source) if source is not None else "<memory>"
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")


def check_counts(minimum: int = 1, **counts: int | float) -> None:
    """Refuse a count or size option below ``minimum`` (zero or negative scenes, frames, workers...)
    with a DataError naming the option as the command line spells it (``max_windows`` ->
    ``--max-windows``)."""
    for name, value in counts.items():
        if value < minimum:
            raise DataError(f"--{name.replace('_', '-')}", f"must be at least {minimum}, got {value}")
