"""occ4d forecast / generate on a tiny fixed dataset: reproducible reports, written layouts."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from occ4d.core.errors import DataError
from occ4d.core.frame import Frame
from occ4d.core.grid import OCC3D
from occ4d.core.pose import yaw_pose
from occ4d.core.vocab import Occ3D
from occ4d.io.infos import devkit_info, save_devkit_infos
from occ4d.io.occ3d import save_labels

FREE = int(Occ3D.FREE)


def static_scene(n: int, step: float, seed: int = 0) -> list[np.ndarray]:
    """n frames of a static street seen by an ego driving ``step`` metres per frame along x."""
    rng = np.random.default_rng(seed)
    world = {}
    for _ in range(60):
        x, y = rng.uniform(-40, 40 + n * step), rng.choice([-1, 1]) * rng.uniform(8, 30)
        world[(x, y)] = (
            rng.uniform(1, 5),
            rng.uniform(1, 5),
            rng.choice([int(Occ3D.MANMADE), int(Occ3D.VEGETATION)]),
        )
    cx, cy = OCC3D.axis_centres(0), OCC3D.axis_centres(1)
    frames = []
    for t in range(n):
        occ = np.full(OCC3D.shape, FREE, np.uint8)
        gx = cx[:, None] + t * step
        road = np.abs(cy)[None, :] < 6
        occ[..., 2] = np.where(road, int(Occ3D.DRIVEABLE_SURFACE), int(Occ3D.SIDEWALK)).astype(np.uint8)
        for (x, y), (w, h, c) in world.items():
            box = (np.abs(gx - x) < w) & (np.abs(cy[None, :] - y) < h)
            occ[..., 3:6][box] = c
        frames.append(occ)
    return frames


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("wm_data")
    for split, seed in (("train", 0), ("val", 1)):
        infos = []
        scene = f"scene-{split}"
        frames = static_scene(11, 2.0, seed)
        tokens = [f"{scene}-{t:02d}" for t in range(len(frames))]
        for t, occ in enumerate(frames):
            rel = f"gts/{scene}/{tokens[t]}/labels.npz"
            pose = yaw_pose(2.0 * t, 0.0, 0.0)
            save_labels(root / rel, Frame(semantics=occ, ego2global=pose))
            infos.append(
                devkit_info(
                    tokens[t],
                    scene,
                    t,
                    1_000_000 + 500_000 * t,
                    pose,
                    rel,
                    prev=tokens[t - 1] if t else "",
                    next=tokens[t + 1] if t < 10 else "",
                )
            )
        save_devkit_infos(root / f"occ4d_infos_temporal_{split}.pkl", infos, "test")
    return root


def test_forecast_report_is_reproducible(dataset_dir, tmp_path, capsys):
    from occ4d.commands.forecast import forecast

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    forecast(ckpt="ego-warp", data=str(dataset_dir), json=str(a))
    forecast(ckpt="ego-warp", data=str(dataset_dir), json=str(b))
    out = capsys.readouterr().out
    assert "trajectory: ground truth" in out and "history 4 frames" in out and "2 windows" in out
    ra, rb = json.loads(a.read_text()), json.loads(b.read_text())
    assert ra == rb and ra["trajectory"] == "gt" and ra["windows"] == 2
    # A static world and the exact ego path: warping loses only what enters the view.
    assert ra["IoU@1s"] > 85 and ra["mIoU_avg"] > 80
    forecast(ckpt="copy-last", data=str(dataset_dir), json=str(a), max_windows=1)
    copy = json.loads(a.read_text())
    assert copy["windows"] == 1 and copy["IoU_avg"] < ra["IoU_avg"]
    # This world has no dynamic objects, so motion-warp tracks nothing and equals ego-warp.
    forecast(ckpt="motion-warp", data=str(dataset_dir), json=str(a))
    motion = json.loads(a.read_text())
    assert motion["model"] == "motion-warp" and motion["per_class"] == ra["per_class"]
    # Extruding the ground into the area entering the grid recovers some of what ego-warp loses.
    forecast(ckpt="motion-extrude", data=str(dataset_dir), json=str(a))
    ext = json.loads(a.read_text())
    assert ext["model"] == "motion-extrude" and ext["IoU_avg"] > ra["IoU_avg"]
    # Every frame of this world lies a whole number of voxels from the others: fusing the history
    # samples nothing new, so fused-warp equals motion-extrude.
    forecast(ckpt="fused-warp", data=str(dataset_dir), json=str(a))
    fused = json.loads(a.read_text())
    assert fused["model"] == "fused-warp" and fused["per_class"] == ext["per_class"]
    with pytest.raises(SystemExit, match="planner"):
        forecast(ckpt="ego-warp", data=str(dataset_dir), traj="pred")


def test_forecast_regions_split_what_the_history_saw_from_what_it_did_not(dataset_dir, tmp_path, capsys):
    from occ4d.commands.forecast import forecast

    a = tmp_path / "a.json"
    forecast(ckpt="ego-warp", data=str(dataset_dir), json=str(a), regions=True)
    ego = json.loads(a.read_text())
    assert "mIoU unseen" in capsys.readouterr().out
    seen, unseen = ego["regions"]["seen"], ego["regions"]["unseen"]
    # a static world whose frames lie whole voxels apart: what the current frame saw warps exactly,
    # and ego-warp leaves the area entering the grid free
    assert seen["mIoU_avg"] == 100.0 and seen["IoU_avg"] == 100.0
    assert unseen["IoU_avg"] == 0.0 and ego["IoU_avg"] < 100.0
    saved = str(tmp_path / "s")
    forecast(ckpt="motion-extrude", data=str(dataset_dir), json=str(a), regions=True, save=saved)
    ext = json.loads(a.read_text())["regions"]
    assert ext["seen"]["per_class"] == seen["per_class"] and ext["unseen"]["IoU_avg"] > 0.0
    # the saved clips re-scored by occ4d eval forecast --regions give the same split
    from occ4d.commands.eval import evaluate

    report = evaluate("forecast", tmp_path / "s" / "pred", tmp_path / "s" / "gt", regions=True)
    for region in ("seen", "unseen"):
        assert report["results"]["regions"][region]["per_class"] == ext[region]["per_class"]
    assert "IoU (occupied, unseen)" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="forecast only"):
        evaluate("occ", tmp_path / "s" / "pred", tmp_path / "s" / "gt", regions=True)


def test_window_sets_follow_the_published_protocols(dataset_dir, tmp_path):
    from pathlib import Path

    from occ4d.commands.forecast import forecast
    from occ4d.data.dataset import ClipDataset
    from occ4d.data.index import FrameRecord
    from occ4d.models.world.forecasting import select_windows

    eye = np.eye(4)
    records = [
        FrameRecord(f"{scene}-{t}", scene, 1_000_000 + 500_000 * t, Path("x"), eye, eye)
        for scene, n in (("a", 14), ("b", 12), ("c", 10))
        for t in range(n)
    ]

    def starts(ds):
        return [(w.scene, w.frames[0]) for w in ds.windows]

    # OccWorld: 12-frame windows (5 history, 6 scored, 1 unscored), starts 0 .. L - 13 per scene
    ow = select_windows(ClipDataset(records, past=5, future=6), "occworld")
    assert starts(ow) == [("a", 0), ("a", 1)]
    # DOME: the first 10 keyframes of each scene, 4 history frames
    dome = select_windows(ClipDataset(records, past=4, future=6), "dome")
    assert starts(dome) == [("a", 0), ("b", 0), ("c", 0)]
    assert len(select_windows(ClipDataset(records, past=4, future=6), "all")) == 5 + 3 + 1
    with pytest.raises(SystemExit, match="5 history"):
        select_windows(ClipDataset(records, past=4, future=6), "occworld")
    out = tmp_path / "dome.json"
    forecast(ckpt="ego-warp", data=str(dataset_dir), windows="dome", json=str(out))
    res = json.loads(out.read_text())
    assert res["windows"] == 1 and res["window_set"] == "dome"
    with pytest.raises(DataError, match="'occworld' set"):  # 11 keyframes: no 12-frame window
        forecast(ckpt="ego-warp", data=str(dataset_dir), windows="occworld", past=5)


def test_diffusion_forecast_run_is_reproducible(dataset_dir):
    from occ4d.data.dataset import ClipDataset
    from occ4d.data.index import load_index
    from occ4d.models.tokenizers import OccTokenizer, TokenizerConfig
    from occ4d.models.world import DiTConfig, ForecasterConfig, LatentCodec, OccForecaster
    from occ4d.models.world.forecasting import run_forecast

    torch.manual_seed(0)
    tok = OccTokenizer(
        TokenizerConfig(
            channels=8,
            channel_mult=(1, 2),
            spatial_down=1,
            num_res_blocks=1,
            latent_dim=4,
            codebook_size=16,
            expansion=1,
            mid_attention=False,
        )
    ).eval()
    codec = LatentCodec(tok)
    ds = ClipDataset(load_index(dataset_dir, "val"), past=4, future=6, with_masks=False)
    codec.fit([ds[0]["semantics"][None, :2]])
    lat = codec.latent_shape(10)
    fc = OccForecaster(
        ForecasterConfig(
            dit=DiTConfig(
                latent_channels=4,
                latent_size=lat,
                traj_frames=10,
                patch=(1, 10, 10),
                hidden=24,
                depth=1,
                heads=2,
            )
        ),
        codec,
    ).eval()
    with torch.no_grad():
        kw = dict(past=4, future=6, seed=3, steps=2, progress=False, max_windows=1)
        r1, r2 = run_forecast(fc, ds, **kw), run_forecast(fc, ds, **kw)
    assert r1 == r2 and r1["windows"] == 1


def test_generation_by_forecasting_follows_the_prompt(dataset_dir, tmp_path):
    """``generate --ckpt motion-extrude --opening DATA``: real frames continued along each prompt."""
    from occ4d.commands.generate import generate
    from occ4d.io.clipfile import load_clip
    from occ4d.models.world.prompts import prompt_trajectory

    clips = {}
    for prompt in ("straight", "left"):
        out = tmp_path / prompt
        # the left turn leaves the road into the verge's vegetation: refused unless allowed
        generate(ckpt="motion-extrude", opening=str(dataset_dir), traj=prompt, frames=10, out=str(out),
                 allow_collision=prompt == "left")
        summary = json.loads((out / "summary.json").read_text())
        clip = load_clip(out / "clips" / f"scene-train-0-{prompt}-s0.npz")
        clips[prompt] = clip.semantics
        assert clip.semantics.shape == (10, *OCC3D.shape)
        # the opening is the scene's first four keyframes, and its ego moved 2 m per frame along x
        want = np.zeros((4, 3))
        want[:, 0] = 2.0 * np.arange(4)
        assert np.allclose(np.asarray(summary["trajectory"])[:4], want)
        # the rest is the prompt, started at the opening's last pose
        rest = np.asarray(summary["trajectory"])[3:] - [6.0, 0.0, 0.0]
        assert np.allclose(rest, prompt_trajectory(prompt, 7), atol=1e-9)
        row = summary["clips"][0]
        # the static street moves as the prompt says: registration recovers it to a few voxels
        assert row["control_from_frame"] == 3 and row["failed_share"] == 0
        assert row["trans_err_m"] < 0.4 and row["yaw_err_deg"] < 1.5, row
    assert np.array_equal(clips["straight"][:4], clips["left"][:4])
    assert not np.array_equal(clips["straight"][4:], clips["left"][4:])
    with pytest.raises(SystemExit, match="drives the ego into vegetation at prompt step 6"):
        generate(ckpt="motion-extrude", opening=str(dataset_dir), traj="left", frames=10,
                 out=str(tmp_path / "x"))
    with pytest.raises(SystemExit, match="--opening"):
        generate(ckpt="motion-extrude", out=str(tmp_path / "x"))
    with pytest.raises(SystemExit, match="exceed"):
        generate(ckpt="motion-extrude", opening=str(dataset_dir), frames=4, out=str(tmp_path / "x"))
    with pytest.raises(DataError, match="fewer than 4 from keyframe 9"):
        generate(ckpt="motion-extrude", opening=str(dataset_dir), opening_start=9, out=str(tmp_path / "x"))


def test_prompts_and_trajectory_files(tmp_path, dataset_dir):
    from occ4d.core.errors import DataError
    from occ4d.models.world.generation import load_trajectory
    from occ4d.models.world.prompts import PROMPTS, prompt_trajectory

    for name in PROMPTS:
        tr = prompt_trajectory(name, 9)
        assert tr.shape == (9, 3) and np.allclose(tr[0], 0)
    assert prompt_trajectory("left", 9)[-1, 1] > 5 and prompt_trajectory("right", 9)[-1, 1] < -5
    assert prompt_trajectory("left", 9)[-1, 2] == pytest.approx(1.5)
    stop = prompt_trajectory("stop", 12)
    assert np.allclose(stop[-1], stop[-3]) and stop[-1, 0] == pytest.approx(9.0)  # 6^2 / (2 * 2) m
    rows = [[0, 0, 0], [2, 0, 0], [4, 1, math.pi / 8]]
    (tmp_path / "t.json").write_text(json.dumps({"trajectory": rows, "hz": 2}))
    tr, name = load_trajectory(str(tmp_path / "t.json"), 3)
    assert name == "t" and np.allclose(tr, rows)
    tr, name = load_trajectory(str(dataset_dir), 5, scene="scene-val", start=2)
    assert name == "scene-val-2" and np.allclose(tr[:, 0], [0, 2, 4, 6, 8])
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(DataError, match="bad.json"):
        load_trajectory(str(tmp_path / "bad.json"), 3)
    with pytest.raises(DataError, match="prompt"):
        load_trajectory("zigzag", 3)
    (tmp_path / "nan.json").write_text('[[0, 0, 0], [NaN, 0, 0]]')  # Python's json reads NaN
    with pytest.raises(DataError, match=r"nan.json: trajectory contains NaN") as err:
        load_trajectory(str(tmp_path / "nan.json"), 3)
    assert "\n" not in str(err.value)
    (tmp_path / "one.json").write_text("[[0, 0, 0]]")
    with pytest.raises(DataError, match=r"one.json: trajectory has 1 row\(s\)"):
        load_trajectory(str(tmp_path / "one.json"), 3)
    (tmp_path / "flat.json").write_text("[[0, 0], [1, 0]]")
    with pytest.raises(DataError, match=r"flat.json: trajectory must have shape \(T, 3\)"):
        load_trajectory(str(tmp_path / "flat.json"), 3)


def test_real_trajectory_prompt(mini_infos_path):
    from occ4d.models.world.generation import load_trajectory

    tr, name = load_trajectory(str(mini_infos_path), 6)
    assert tr.shape == (6, 3) and np.allclose(tr[0], 0)
    assert 1.0 < np.linalg.norm(tr[-1, :2]) < 100.0  # a real drive: metres, not kilometres


def test_real_trajectory_steers_generation_by_forecasting(mini_infos_path, dataset_dir, tmp_path):
    """A real nuScenes drive (scene-0916's keyframes) as the prompt of a synthetic opening."""
    from occ4d.commands.generate import generate
    from occ4d.models.world.generation import load_trajectory

    out = tmp_path / "real"
    generate(ckpt="fused-warp", opening=str(dataset_dir), traj=str(mini_infos_path), scene="scene-0916",
             frames=10, out=str(out))
    summary = json.loads((out / "summary.json").read_text())
    path, _ = load_trajectory(str(mini_infos_path), 7, "scene-0916")
    rest = np.asarray(summary["trajectory"])[3:] - [6.0, 0.0, 0.0]  # the opening ends at x = 6 m
    assert np.allclose(rest, path, atol=1e-9)
    row = summary["clips"][0]
    assert row["failed_share"] == 0 and row["trans_err_m"] < 0.4 and row["yaw_err_deg"] < 1.5, row


@pytest.mark.slow
def test_train_generate_forecast_end_to_end(dataset_dir, tmp_path, capsys):
    """tokenizer -> generator, forecaster, planner through ``occ4d train``; then generate and forecast."""
    from occ4d.cli import main
    from occ4d.io.clipfile import load_clip

    common = [
        "--data",
        str(dataset_dir),
        "--optim.total-samples",
        "4",
        "--optim.warmup-samples",
        "0",
        "--run.progress",
        "False",
        "--clips.max-val-samples",
        "1",
        "--clips.batch-size",
        "2",
    ]
    tok = tmp_path / "tok"
    main(
        [
            "train",
            "tokenizer",
            "--preset",
            "tiny-vae",
            "--out",
            str(tok),
            *common,
            "--model.channels",
            "8",
            "--model.channel-mult",
            "1",
            "2",
            "4",
            "--model.latent-dim",
            "4",
        ]
    )
    small = [
        "--model.tokenizer",
        str(tok),
        "--model.hidden",
        "24",
        "--model.depth",
        "1",
        "--model.heads",
        "2",
        "--model.eval-steps",
        "2",
        "--model.eval-clips",
        "1",
    ]
    main(
        [
            "train",
            "worldmodel",
            "--preset",
            "tiny-generator",
            "--out",
            str(tmp_path / "gen"),
            *common,
            *small,
            "--model.frames",
            "4",
            "--clips.frames",
            "4",
        ]
    )
    main(
        ["train", "worldmodel", "--preset", "tiny-forecaster", "--out", str(tmp_path / "fc"), *common, *small]
    )
    main(
        [
            "train",
            "worldmodel",
            "--preset",
            "tiny-planner",
            "--out",
            str(tmp_path / "pl"),
            *common,
            "--model.planner-channels",
            "8",
            "--model.planner-levels",
            "2",
        ]
    )
    for k in ("a", "b"):
        main(
            [
                "generate",
                "--ckpt",
                str(tmp_path / "gen"),
                "--traj",
                "left",
                "--frames",
                "6",
                "--samples",
                "2",
                "--seed",
                "5",
                "--steps",
                "2",
                "--out",
                str(tmp_path / f"gen_{k}"),
                "--no-control",
            ]
        )
    a = load_clip(tmp_path / "gen_a" / "clips" / "left-s6.npz")
    b = load_clip(tmp_path / "gen_b" / "clips" / "left-s6.npz")
    assert a.semantics.shape == (6, *OCC3D.shape) and np.array_equal(a.semantics, b.semantics)
    assert (tmp_path / "gen_a" / "gts" / "left-s5" / "left-s5-005" / "labels.npz").is_file()
    # The forecaster continues the generator's opening along the prompt; a seed gives the same clip.
    for k in ("a", "b"):
        main(
            [
                "generate",
                "--ckpt",
                str(tmp_path / "fc"),
                "--opening",
                str(tmp_path / "gen"),
                "--traj",
                "stop",
                "--frames",
                "7",
                "--seed",
                "2",
                "--steps",
                "2",
                "--out",
                str(tmp_path / f"roll_{k}"),
            ]
        )
    a = load_clip(tmp_path / "roll_a" / "clips" / "stop-s2.npz")
    b = load_clip(tmp_path / "roll_b" / "clips" / "stop-s2.npz")
    assert a.semantics.shape == (7, *OCC3D.shape) and np.array_equal(a.semantics, b.semantics)
    summary = json.loads((tmp_path / "roll_a" / "summary.json").read_text())
    assert summary["opening"] == str(tmp_path / "gen") and summary["clips"][0]["control_from_frame"] == 3
    with pytest.raises(SystemExit, match="not a generator run"):
        main(["generate", "--ckpt", str(tmp_path / "fc"), "--opening", str(tmp_path / "pl"), "--out", "x"])
    main(
        [
            "forecast",
            "--ckpt",
            str(tmp_path / "fc"),
            "--data",
            str(dataset_dir),
            "--traj",
            "pred",
            "--planner",
            str(tmp_path / "pl"),
            "--steps",
            "2",
            "--json",
            str(tmp_path / "f.json"),
        ]
    )
    res = json.loads((tmp_path / "f.json").read_text())
    assert res["trajectory"] == "pred" and "l2_1s" in res["planning"] and res["windows"] == 2
    assert "trajectory: predicted by" in capsys.readouterr().out
