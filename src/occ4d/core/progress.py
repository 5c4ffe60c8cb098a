"""The one progress display of every long loop (training, synth, scans, evaluation, sampling).

On a terminal it is a tqdm bar. When its stream is not a terminal (``occ4d train ... > log
2>&1``, a CI job, a pipe) a bar would write one carriage-return update per step into the log,
so it prints one plain line each time another ``every`` percent is done instead::

    synth: 10% (8/80 keyframe)
    synth: 20% (16/80 keyframe)  loss=0.4121

The stream is stderr, as tqdm's, so a command's results on stdout stay clean.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import IO, Any


class Progress:
    """Counts steps of one loop; iterate it (wrapping ``iterable``) or call :meth:`update`."""

    def __init__(self, iterable: Iterable | None = None, *, total: int | None = None, desc: str = "",
                 unit: str = "it", initial: int = 0, enabled: bool = True, every: int = 10,
                 stream: IO[str] | None = None, leave: bool = True):
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.n, self.every, self.postfix = initial, every, ""
        self.stream = stream if stream is not None else sys.stderr
        self._bar = None
        self._printed = self._step(initial)  # the last percent step printed
        self.enabled = enabled
        if enabled and _is_tty(self.stream):
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc or None, unit=unit, file=self.stream,
                             dynamic_ncols=True, leave=leave)

    def _step(self, n: int) -> int:
        if not self.total:
            return 0
        return min(100, 100 * n // self.total) // self.every * self.every

    def update(self, n: int = 1) -> None:
        self.n += n
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(n)
            return
        step = self._step(self.n)
        if step > self._printed:
            self._printed = step
            self._line(f"{step}%")

    def set_postfix(self, **values: Any) -> None:
        """Shown on the bar, or after the next plain line."""
        self.postfix = "  ".join(f"{k}={v}" for k, v in values.items())
        if self._bar is not None:
            self._bar.set_postfix(values)

    def _line(self, done: str) -> None:
        counted = f"{self.n}/{self.total}" if self.total else str(self.n)
        text = f"{self.desc or 'progress'}: {done} ({counted} {self.unit})"
        print(text + (f"  {self.postfix}" if self.postfix else ""), file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.enabled and not self.total and self.n:
            self._line("done")  # no total to take percentages of: one line at the end
        self.enabled = False

    def __iter__(self) -> Iterator:
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress(iterable: Iterable | None = None, **kwargs: Any) -> Progress:
    """A :class:`Progress` over ``iterable`` (or a manual one with ``total=``); see the module."""
    return Progress(iterable, **kwargs)


def _is_tty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
