"""Every bad input to a real ``occ4d`` command, from the console: exit status 1, exactly one line on
stderr that names the file (or option) at fault, no traceback, and no output left half-written.

Each case runs the installed entry point (``python -m occ4d.cli``) in a subprocess, as a user
would. The inputs are built once per module: a tiny Occ3D world with devkit info files, a
tokenizer and a perception run (freshly built weights saved as checkpoints), and the bad files.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from occ4d.core.frame import Frame
from occ4d.core.pose import yaw_pose
from occ4d.core.vocab import Occ3D
from occ4d.io.atomic import save_npz
from occ4d.io.clipfile import save_clip
from occ4d.io.infos import devkit_info, save_devkit_infos, save_pkl
from occ4d.io.occ3d import save_labels
from occ4d.train.checkpoint import save_checkpoint
from occ4d.train.config import RunConfig, TrainConfig, to_dict
from occ4d.train.registry import get_spec

SHAPE = (200, 200, 16)
BAD = "gts/scene-0000/tok1/labels.npz"  # the bad frame of a world


def write_world(root: Path, frames: int = 2, bad: dict[int, dict] | None = None,
                poses: dict[int, dict] | None = None) -> Path:
    """One val scene in the Occ3D layout with a devkit info file; ``bad`` replaces frame t's arrays,
    ``poses`` edits frame t's info."""
    infos = []
    for t in range(frames):
        sem = np.full(SHAPE, int(Occ3D.FREE), np.uint8)
        sem[:, :, 2] = int(Occ3D.DRIVEABLE_SURFACE)
        sem[60 + 4 * t:70 + 4 * t, 95:100, 3:6] = int(Occ3D.CAR)
        rel = f"gts/scene-0000/tok{t}/labels.npz"
        if bad and t in bad:
            save_npz(root / rel, True, **bad[t])
        else:
            save_labels(root / rel, Frame(semantics=sem, mask_camera=np.ones(SHAPE, bool)))
        info = devkit_info(f"tok{t}", "scene-0000", t, 1_000_000 + 500_000 * t, yaw_pose(2.0 * t, 0.0, 0.0),
                           rel, prev=f"tok{t - 1}" if t else "", next=f"tok{t + 1}" if t < frames - 1 else "")
        info.update((poses or {}).get(t, {}))
        infos.append(info)
    save_devkit_infos(root / "occ4d_infos_temporal_val.pkl", infos, "test")
    return root


def make_run(out: Path, name: str, preset: str, **model) -> Path:
    """A run folder holding one checkpoint of freshly built weights, as the loop writes it."""
    spec = get_spec(name)
    p = spec.presets[preset]
    cfg = TrainConfig(name, preset, dataclasses.replace(p.model, **model), p.data, p.optim,
                      RunConfig(out=str(out)))
    torch.manual_seed(0)
    net = spec.build(cfg.model)
    save_checkpoint(out, 1, {"model": net.state_dict()}, {"config": to_dict(cfg), "samples": 1}, keep_last=1)
    return out


class Marker:
    """Unpickling this would run ``touch <path>``: a restricted unpickler must refuse it."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def _mount(folder: Path, options: str) -> str | None:
    """Mount a tmpfs on ``folder``; the reason it cannot be, or None."""
    folder.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        return "no mount command"
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                          capture_output=True, text=True)
    return None if done.returncode == 0 else f"cannot mount a tmpfs here ({done.stderr.strip()})"


@pytest.fixture(scope="module")
def w(tmp_path_factory):
    """Every input of the battery, by name (paths); mounts are undone at the end."""
    base = tmp_path_factory.mktemp("bad_input")
    p: dict[str, Path | str | None] = {"base": base, "marker": base / "MARKER"}
    p["world"] = write_world(base / "world")
    p["tok"] = make_run(base / "tok", "tokenizer", "tiny-vqvae", channels=8, latent_dim=16, codebook_size=32,
                        train_crop=32)
    p["per"] = make_run(base / "per", "perception", "tiny", image_size=(64, 32), depth_bins=8,
                        context_channels=8, fpn_channels=16, bev_channels=(16, 32), head_channels=8)
    sem = np.full(SHAPE, int(Occ3D.FREE), np.uint8)
    cam = np.ones(SHAPE, np.uint8)
    # bad frames, each in a world of its own (the command reads every frame of its world)
    p["w_float"] = write_world(base / "w_float", bad={1: {"semantics": sem.astype(np.float32),
                                                            "mask_camera": cam, "mask_lidar": cam}})
    p["w_shape"] = write_world(base / "w_shape", bad={1: {"semantics": sem[:, :, :15], "mask_camera": cam,
                                                            "mask_lidar": cam}})
    big = sem.copy()
    big[5, 5, 5] = 30
    p["w_class"] = write_world(base / "w_class", bad={1: {"semantics": big, "mask_camera": cam,
                                                            "mask_lidar": cam}})
    nan = {"ego2global_translation": [float("nan"), 0.0, 0.0]}
    p["w_nan"] = write_world(base / "w_nan", poses={1: nan})
    p["w_shear"] = write_world(base / "w_shear", poses={1: {"ego2global": np.diag([2.0, 1.0, 1.0, 1.0])}})
    trunc = base / "w_trunc"
    write_world(trunc)
    label = trunc / "gts/scene-0000/tok1/labels.npz"
    label.write_bytes(label.read_bytes()[:300])
    p["w_trunc"], p["trunc_label"] = trunc, label
    # loose files
    nokey = base / "nokey" / "labels.npz"
    save_npz(nokey, True, mask_camera=cam, mask_lidar=cam)
    p["nokey"] = nokey
    evil = base / "evil.pkl"
    evil.write_bytes(pickle.dumps(Marker(p["marker"])))
    p["evil"] = evil
    (base / "empty.pkl").write_bytes(b"")
    p["empty"] = base / "empty.pkl"
    save_pkl(base / "half.pkl", {"infos": [{"token": "a" * 200}], "metadata": {}})
    (base / "half.pkl").write_bytes((base / "half.pkl").read_bytes()[:40])
    p["half"] = base / "half.pkl"
    # prediction folders for occ4d eval
    good = p["world"] / "gts/scene-0000/tok0/labels.npz"
    pred = base / "pred_shape"
    for t in range(2):
        save_npz(pred / f"tok{t}.npz", True, arr_0=np.zeros((200, 200, 15) if t else SHAPE, np.uint8))
    p["pred_shape"] = pred
    pred = base / "pred_nokey"
    for t in range(2):
        save_npz(pred / f"tok{t}.npz", True, **({"other": np.zeros(SHAPE, np.uint8)} if t else
                                                 {"arr_0": np.zeros(SHAPE, np.uint8)}))
    p["pred_nokey"] = pred
    p["pred_ok"] = base / "pred_ok"
    for t in range(2):
        save_npz(p["pred_ok"] / f"tok{t}.npz", True, arr_0=np.zeros(SHAPE, np.uint8))
    clips = base / "clips"
    for d in ("pred", "gt"):
        save_clip(clips / d / "c.npz", np.full((8, *SHAPE), int(Occ3D.FREE), np.uint8), np.zeros((8, 3)))
    bad_clip = clips / "pred" / "c.npz"
    bad_clip.write_bytes(bad_clip.read_bytes()[:100])
    p["clips"], p["bad_clip"] = clips, bad_clip
    p["good_label"] = good
    # broken runs
    for name in ("tok_json", "tok_st", "tok_resume"):
        shutil.copytree(p["tok"], base / name)
        p[name] = base / name
    (base / "tok_json" / "ckpt-00000001.json").write_bytes(b"\x80\x04 not json")
    (base / "tok_st" / "ckpt-00000001.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{bad")
    (base / "tok_resume" / "ckpt-00000001.safetensors").write_bytes(b"")
    # a read-only folder and a full disk (tmpfs mounts; root ignores chmod)
    p["ro_skip"] = _mount(base / "ro", "ro,size=64k")
    p["ro"] = base / "ro"
    p["full_skip"] = _mount(base / "full", "size=64k")
    p["full"] = base / "full"
    if p["full_skip"] is None:
        try:
            with open(base / "full" / "filler", "wb") as f:
                while True:
                    f.write(b"\0" * 4096)
                    f.flush()
        except OSError:
            pass
    yield p
    for name in ("ro", "full"):
        if p[f"{name}_skip"] is None:
            subprocess.run(["umount", str(base / name)], check=False)


# (id, argv with {name} placeholders, the text stderr must name, the output that must not appear,
#  the mount it needs or None)
CASES = [
    ("synth-negative-frames", ["synth", "--out", "{base}/s1", "--scenes", "1", "--frames", "-3"],
     "--frames", "{base}/s1", None),
    ("synth-zero-scenes", ["synth", "--out", "{base}/s2", "--scenes", "0"], "--scenes", "{base}/s2", None),
    ("synth-zero-workers", ["synth", "--out", "{base}/s3", "--scenes", "1", "--workers", "0"], "--workers",
     "{base}/s3", None),
    ("synth-read-only-output", ["synth", "--out", "{ro}/s", "--scenes", "1", "--frames", "1"], "{ro}/s",
     "{ro}/s", "ro"),
    ("info-float-semantics", ["info", "{w_float}", "--no-progress"], "{w_float}/" + BAD,
     None, None),
    ("info-wrong-shape", ["info", "{w_shape}", "--no-progress"], "{w_shape}/" + BAD,
     None, None),
    ("info-class-out-of-range", ["info", "{w_class}", "--no-progress"],
     "{w_class}/" + BAD, None, None),
    ("info-truncated-npz", ["info", "{w_trunc}", "--no-progress"], "{trunc_label}", None, None),
    ("info-nan-pose", ["info", "{w_nan}", "--no-progress"], "{w_nan}/occ4d_infos_temporal_val.pkl", None,
     None),
    ("info-non-rigid-pose", ["info", "{w_shear}", "--no-progress"], "{w_shear}/occ4d_infos_temporal_val.pkl",
     None, None),
    ("info-malicious-pickle", ["info", "{evil}", "--no-progress"], "{evil}", None, None),
    ("info-empty-pickle", ["info", "{empty}", "--no-progress"], "{empty}", None, None),
    ("info-truncated-pickle", ["info", "{half}", "--no-progress"], "{half}", None, None),
    ("convert-missing-semantics", ["convert", "{nokey}", "--to", "openocc", "--out", "{base}/c1"],
     "{nokey}", "{base}/c1", None),
    ("convert-truncated-npz", ["convert", "{trunc_label}", "--to", "openocc", "--out", "{base}/c2"],
     "{trunc_label}", "{base}/c2", None),
    ("convert-read-only-output", ["convert", "{good_label}", "--to", "openocc", "--out", "{ro}/c"], "{ro}/c",
     "{ro}/c", "ro"),
    ("convert-full-disk", ["convert", "{good_label}", "--to", "openocc", "--out", "{full}/c"], "{full}/c",
     "{full}/c", "full"),
    ("eval-occ-wrong-shape", ["eval", "occ", "--pred", "{pred_shape}", "--gt", "{world}"],
     "{pred_shape}/tok1.npz", None, None),
    ("eval-ray-missing-key", ["eval", "ray", "--pred", "{pred_nokey}", "--gt", "{world}"],
     "{pred_nokey}/tok1.npz", None, None),
    ("eval-flow-no-flow", ["eval", "flow", "--pred", "{pred_ok}", "--gt", "{world}"], "labels.npz", None,
     None),
    ("eval-forecast-truncated-clip", ["eval", "forecast", "--pred", "{clips}/pred", "--gt", "{clips}/gt"],
     "{bad_clip}", None, None),
    ("eval-occ-json-full-disk", ["eval", "occ", "--pred", "{pred_ok}", "--gt", "{world}", "--json",
                                 "{full}/e.json"], "{full}/e.json", "{full}/e.json", "full"),
    ("eval-tokenizer-given-perception", ["eval", "tokenizer", "--ckpt", "{per}", "--data", "{world}"],
     "{per}", None, None),
    ("eval-perception-given-pickle", ["eval", "perception", "--ckpt", "{evil}", "--data", "{world}"],
     "{evil}", None, None),
    ("render-class-out-of-range", ["render", "{w_class}/" + BAD, "--out",
                                   "{base}/r.png", "--style", "topdown"], "tok1/labels.npz", "{base}/r.png",
     None),
    ("render-zero-every", ["render", "{world}", "--out", "{base}/r2.png", "--every", "0"], "--every",
     "{base}/r2.png", None),
    ("train-resume-corrupt-checkpoint", ["train", "tokenizer", "--preset", "tiny-vqvae", "--data", "{world}",
                                         "--out", "{tok_resume}", "--resume", "--model.channels", "8",
                                         "--model.latent-dim", "16", "--model.codebook-size", "32",
                                         "--model.train-crop", "32"],
     "{tok_resume}/ckpt-00000001.safetensors", None, None),
    ("train-unknown-preset", ["train", "tokenizer", "--preset", "tiny-vqvea", "--data", "{world}", "--out",
                              "{base}/t9"], "'tiny-vqvea'", "{base}/t9", None),
    ("train-worldmodel-tokenizer-is-a-pickle", ["train", "worldmodel", "--preset", "tiny-forecaster",
                                                "--data", "{world}", "--out", "{base}/wm",
                                                "--model.tokenizer", "{evil}"],
     "{evil}", "{base}/wm", None),
    ("train-worldmodel-tokenizer-is-perception", ["train", "worldmodel", "--preset", "tiny-forecaster",
                                                  "--data", "{world}", "--out", "{base}/wm2",
                                                  "--model.tokenizer", "{per}"], "{per}", "{base}/wm2", None),
    ("forecast-unknown-baseline", ["forecast", "--ckpt", "{base}/motion-wrap", "--data", "{world}"],
     "{base}/motion-wrap", None, None),
    ("forecast-tokenizer-run", ["forecast", "--ckpt", "{tok}", "--data", "{world}"], "{tok}", None, None),
    ("generate-corrupt-json", ["generate", "--ckpt", "{tok_json}", "--out", "{base}/g"],
     "{tok_json}/ckpt-00000001.json", "{base}/g", None),
    ("generate-zero-samples", ["generate", "--ckpt", "fused-warp", "--opening", "{world}", "--samples", "0",
                               "--out", "{base}/g2"], "--samples", "{base}/g2", None),
    ("report-corrupt-safetensors", ["report", "{tok_st}", "--out", "{base}/rep.html", "--data", "{world}"],
     "{tok_st}/ckpt-00000001.safetensors", "{base}/rep.html", None),
    ("report-corrupt-json", ["report", "{tok_json}", "--out", "{base}/rep2.html", "--data", "{world}"],
     "{tok_json}/ckpt-00000001.json", "{base}/rep2.html", None),
    ("perceive-pickle-as-checkpoint", ["perceive", "--ckpt", "{evil}", "--info", "{half}", "--out",
                                       "{base}/p"], "{evil}", "{base}/p", None),
]


def _fill(text: str, w: dict) -> str:
    return text.format(**{k: v for k, v in w.items() if not k.endswith("_skip")})


@pytest.mark.parametrize("argv, names, output, mount", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_naming_the_file(w, argv, names, output, mount):
    if mount is not None and w[f"{mount}_skip"]:
        pytest.skip(w[f"{mount}_skip"])
    args = [_fill(a, w) for a in argv]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-m", "occ4d.cli", *args], capture_output=True, text=True,
                          timeout=120, env=env, cwd=w["base"])
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert len(lines) == 1, done.stderr
    assert _fill(names, w) in lines[0]
    assert not w["marker"].exists(), "a pickle was unpickled"
    if output is not None:
        out = Path(_fill(output, w))
        left = [p for p in out.rglob("*") if p.is_file()] if out.is_dir() else [out] if out.exists() else []
        assert not left, f"partial output left: {left}"
        temps = list(out.parent.rglob(".*.tmp"))
        assert not temps, f"temporary files left: {temps}"
