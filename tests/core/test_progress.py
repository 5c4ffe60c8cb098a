"""The progress helper: a tqdm bar on a terminal, one plain line per 10% anywhere else."""

from __future__ import annotations

import io

from occ4d.core.progress import Progress, progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_redirected_stream_gets_one_plain_line_per_ten_percent():
    out = io.StringIO()
    assert list(progress(range(50), desc="synth", unit="keyframe", stream=out)) == list(range(50))
    lines = out.getvalue().splitlines()
    assert lines == [f"synth: {p}% ({p // 2}/50 keyframe)" for p in range(10, 101, 10)]
    assert "\r" not in out.getvalue()


def test_manual_updates_resume_from_initial_and_carry_the_postfix():
    out = io.StringIO()
    bar = Progress(total=20, initial=10, desc="train", unit="step", stream=out)
    for _ in range(10):
        bar.update(1)
        bar.set_postfix(loss="0.5")
    bar.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "train: 60% (12/20 step)  loss=0.5"
    assert lines[-1] == "train: 100% (20/20 step)  loss=0.5"
    assert len(lines) == 5  # 60, 70, 80, 90, 100: nothing for the half done before the resume


def test_big_updates_print_once_and_an_unknown_total_prints_at_the_end():
    out = io.StringIO()
    with Progress(total=3, desc="x", stream=out) as bar:
        bar.update(3)
    assert out.getvalue().splitlines() == ["x: 100% (3/3 it)"]
    out = io.StringIO()
    list(progress(iter(range(7)), desc="scan", unit="file", stream=out))
    assert out.getvalue().splitlines() == ["scan: done (7 file)"]


def test_disabled_prints_nothing():
    out = io.StringIO()
    assert list(progress(range(30), enabled=False, stream=out)) == list(range(30))
    assert out.getvalue() == ""


def test_a_terminal_gets_a_tqdm_bar():
    out = Terminal()
    list(progress(range(5), desc="forecast", unit="window", stream=out))
    text = out.getvalue()
    assert "\r" in text and "forecast" in text and "5/5" in text
