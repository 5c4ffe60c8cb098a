"""occ4d demo, at the smallest size: every stage runs and leaves its outputs."""

from __future__ import annotations

import numpy as np
import pytest

from occ4d.cli import main
from occ4d.vis.video import read_video


@pytest.mark.slow  # trains three tiny models and samples them: about a minute on two idle cores
def test_demo_end_to_end(tmp_path, capsys):
    """Every stage at the smallest size: synthesis, pictures, baselines, training, forecast, generation."""
    main(["demo", "--out", str(tmp_path), "--scenes", "2", "--frames", "10", "--pictures", "2",
          "--budget", "0.003", "--tokenizer-budget", "0.001", "--steps", "2", "--gen-frames", "4"])
    text = capsys.readouterr().out
    assert "class histogram" in text
    baselines = ("copy-last", "ego-warp", "motion-warp", "motion-extrude", "fused-warp")
    assert all(f"{name}: 1 windows" in text for name in baselines)
    pngs = sorted((tmp_path / "pictures").glob("*.png"))
    assert len(pngs) == 2
    gif = next((tmp_path / "pictures").glob("*.gif"))
    frames = read_video(gif)
    assert len(frames) == 10 and frames.std() > 10  # ten keyframes, not blank
    html = (tmp_path / "viewer.html").read_text()
    assert "ego-warp forecast" in html and "motion-warp forecast" in html
    assert "diffusion forecaster forecast" in html and len(html) > 100_000
    assert (tmp_path / "world" / "occ4d_infos_temporal_val.pkl").is_file()
    # three trained runs, each with its final checkpoint
    for run in ("tiny-rvq", "tiny-forecaster-warp", "tiny-generator-scene"):
        assert list((tmp_path / "runs" / run).glob("ckpt-*.safetensors")), run
    # the tokenizer's figure says what it rests on
    note = next(line for line in text.splitlines() if "tokenizer reconstruction:" in line)
    assert "validation frame(s) after" in note and "indicative only" in note and "fewer than 20" in note
    assert "hand-written 16x codec" in text and "on the same 10 frame(s)" in text  # the bar beside it
    # baselines and the trained forecaster: protocol tables of real numbers in range
    # (whole grid, then the seen area and the area entering the grid apart)
    rows = [line.split() for line in text.splitlines() if line.startswith(("mIoU", "IoU"))]
    labels = [" ".join(r[:-4]) for r in rows]
    vals = np.array([[float(v) for v in r[-4:]] for r in rows])
    assert vals.shape == (36, 4) and np.all((vals >= 0) & (vals <= 100))  # 5 baselines + the model
    assert labels[:6] == ["mIoU", "IoU", "mIoU seen", "IoU seen", "mIoU unseen", "IoU unseen"]
    assert labels == labels[:6] * 6
    assert "diffusion forecaster (tiny-forecaster-warp at 0.003 x budget): 1 windows" in text
    # and it says plainly whether it beats the best hand-written baseline
    assert "the best hand-written baseline" in text
    assert "hand-written baseline in the area entering the grid" in text
    # one generated clip per prompt, with the control error moved along the prompt and not
    table = text[text.index("control: not moved along the prompt"):].splitlines()[1:5]
    control = [line.split() for line in table]
    assert [r[0] for r in control] == ["straight", "left", "right", "stop"]
    errs = np.array([[float(r[1]), float(r[3]), float(r[4]), float(r[6])] for r in control])
    assert np.isfinite(errs).all() and (errs >= 0).all()
    for prompt in ("straight", "left", "right", "stop"):
        assert len(read_video(tmp_path / "generated" / f"{prompt}.gif")) == 4
        assert (tmp_path / "generated" / f"{prompt}.npz").is_file()


def test_demo_without_training_runs_the_baselines_only(tmp_path, capsys):
    main(["demo", "--out", str(tmp_path), "--scenes", "2", "--frames", "10", "--pictures", "1", "--no-train"])
    text = capsys.readouterr().out
    assert "[4/4] writing the interactive viewer" in text and "training the tiny" not in text
    assert not (tmp_path / "runs").exists()
    html = (tmp_path / "viewer.html").read_text()
    assert "ego-warp forecast" in html and "motion-warp forecast" in html
    # generation by forecasting: the real opening follows each prompt, far closer than the control
    table = text[text.index("control (history extrapolated)"):].splitlines()[1:5]
    rows = [line.split() for line in table]
    assert [r[0] for r in rows] == ["straight", "left", "right", "stop"]
    errs = np.array([[float(r[1]), float(r[3]), float(r[4]), float(r[6])] for r in rows])
    assert np.all(errs[:, 0] < 0.5) and np.all(errs[:, 2] > 4 * errs[:, 0])
    assert np.all(errs[1:3, 1] < 1.0) and np.all(errs[1:3, 3] > 5.0)  # the turns, in degrees
    for prompt in ("straight", "left", "right", "stop"):
        assert len(read_video(tmp_path / "steered" / f"{prompt}.gif")) == 10
        assert (tmp_path / "steered" / f"{prompt}.npz").is_file()


def test_demo_refuses_too_few_frames(tmp_path):
    with pytest.raises(SystemExit, match="at least 10"):
        main(["demo", "--out", str(tmp_path), "--frames", "5"])


def test_the_forecaster_is_compared_with_the_best_baseline_plainly():
    from occ4d.demo.stages import versus_best_baseline

    base = {"ego-warp": {"mIoU_avg": 50.0}, "fused-warp": {"mIoU_avg": 55.0}}
    behind = versus_best_baseline({"mIoU_avg": 50.25}, base, 0.15)
    assert "not ahead of fused-warp" in behind and "4.75 avg mIoU behind" in behind and "0.15 x" in behind
    ahead = versus_best_baseline({"mIoU_avg": 56.5}, base, 1.0)
    assert ahead.startswith("the trained forecaster is 1.50 avg mIoU ahead of fused-warp")
    assert "entering the grid" not in ahead  # no regions scored: one line

    def scored(whole, unseen):
        regions = {"seen": {"mIoU_avg": 0.0}, "unseen": {"mIoU_avg": unseen}}
        return {"mIoU_avg": whole, "regions": regions}

    base = {"ego-warp": scored(50.0, 0.0), "motion-extrude": scored(54.0, 12.0),
            "fused-warp": scored(55.0, 11.0)}
    both = versus_best_baseline(scored(54.0, 12.5), base, 0.5).splitlines()
    assert both[0].startswith("at 0.5 x its budget the trained forecaster is not ahead of fused-warp")
    assert "1.00 avg mIoU behind" in both[0]
    assert both[1].startswith("the trained forecaster is 0.50 avg mIoU ahead of motion-extrude, the best "
                              "hand-written baseline in the area entering the grid")


def test_reconstruction_note_names_frames_and_budget(tmp_path):
    from occ4d.demo.models import reconstruction_note
    from occ4d.train.logger import RunLogger

    log = RunLogger(tmp_path)
    log.log("eval", 60, 240, {"mIoU": 0.82, "IoU": 16.68, "frames": 4})
    note = reconstruction_note(tmp_path, 0.15)
    assert "0.82 mIoU / 16.68 IoU on 4 validation frame(s) after 240 training samples" in note
    assert "fewer than 20 frames scored" in note and "a fraction of the preset's training" in note
    log.log("eval", 400, 1600, {"mIoU": 61.85, "IoU": 78.09, "frames": 80})
    assert "indicative" not in reconstruction_note(tmp_path, 1.0)  # the full figure stands alone
    assert "fraction" not in reconstruction_note(tmp_path, 1.0)
    partial = reconstruction_note(tmp_path, 0.3)
    assert "fraction" in partial and "indicative" not in partial
