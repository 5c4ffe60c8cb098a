"""``occ4d eval occ|ray|flow`` under ``torchrun --nproc_per_node=1|2|3`` writes the same JSON as a
plain single-process run, byte for byte: each frame is scored by exactly one process and the
accumulators' reduction is exact (gloo on CPU).

Ground truth is a tiny synthetic world (2 scenes x 2 keyframes; for flow the same frames as OpenOcc
v2 labels with a flow field); predictions are perturbed copies in the submission layouts occ4d eval
reads (``<token>.npz`` with ``arr_0`` or ``pred``, or ``gts/<scene>/<token>/labels.npz``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from occ4d.core import OpenOcc
from occ4d.core.frame import Frame
from occ4d.io.atomic import save_npz
from occ4d.io.convert import convert_frame
from occ4d.io.infos import load_pkl, save_devkit_infos
from occ4d.io.occ3d import load_labels
from occ4d.io.openocc import save_openocc

PROCESSES = (1, 2, 3)
MOVING = [int(c) for c in (OpenOcc.CAR, OpenOcc.TRUCK, OpenOcc.BUS, OpenOcc.BICYCLE, OpenOcc.PEDESTRIAN)]


def run(*args: str, cwd: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def perturbed(sem: np.ndarray, seed: int, free: int) -> np.ndarray:
    """A prediction: the labels shifted by one voxel and 3% of the voxels relabelled at random."""
    rng = np.random.default_rng(seed)
    out = np.roll(sem, 1, axis=seed % 2)
    flip = rng.random(sem.shape) < 0.03
    out[flip] = rng.integers(0, free + 1, int(flip.sum()), dtype=np.uint8)
    return out


def write_pred(pred: Path, k: int, info: dict, sem: np.ndarray, flow: np.ndarray | None = None) -> None:
    """Frame k's prediction in one of the three layouts, in turn."""
    extra = {} if flow is None else {"flow": flow}
    if k % 3 == 0:
        save_npz(pred / f"{info['token']}.npz", True, sem, **extra)  # arr_0, CVPR 2023
    elif k % 3 == 1:
        save_npz(pred / f"{info['token']}.npz", True, pred=sem, **extra)  # SparseOcc
    else:
        save_npz(pred / "gts" / info["scene_name"] / info["token"] / "labels.npz", True,
                 semantics=sem, **extra)


@pytest.fixture(scope="module")
def sets(tmp_path_factory) -> Path:
    """world/ (Occ3D GT), pred/ (its predictions), flow_gt/ (OpenOcc v2 with flow), flow_pred/."""
    root = tmp_path_factory.mktemp("eval_torchrun")
    run("-m", "occ4d.cli", "synth", "--out", "world", "--scenes", "2", "--frames", "2", "--seed", "0",
        cwd=root)
    infos = [i for split in ("train", "val")
             for i in load_pkl(root / "world" / f"occ4d_infos_temporal_{split}.pkl")["infos"]]
    flow_infos = []
    for k, info in enumerate(infos):
        frame = load_labels(root / "world" / info["occ_gt_path"])
        write_pred(root / "pred", k, info, perturbed(frame.semantics, k, frame.vocab.free))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Occ3D -> OpenOcc is a name-level relabel; fine here
            oo = convert_frame(frame, "openocc")[0]
        rng = np.random.default_rng(100 + k)
        flow = np.zeros((*oo.semantics.shape, 2), np.float32)
        moving = np.isin(oo.semantics, MOVING)
        flow[moving] = rng.normal(0, 3, (int(moving.sum()), 2)).astype(np.float32)
        rel = f"openocc_v2/{info['scene_name']}/{info['token']}/labels.npz"
        save_openocc(root / "flow_gt" / rel, Frame(semantics=oo.semantics, vocab=oo.vocab, grid=oo.grid,
                                                   flow=flow))
        flow_infos.append({**info, "occ_gt_path": rel})
        pflow = flow * 0.9 + rng.normal(0, 0.2, flow.shape).astype(np.float32)
        write_pred(root / "flow_pred", k, info, perturbed(oo.semantics, k, oo.vocab.free), pflow)
    save_devkit_infos(root / "flow_gt" / "openocc_infos_temporal_val.pkl", flow_infos, "occ4d-synth-v1")
    return root


# Each kind launches the command 4 times (about 40 s on 2 cores, mostly imports): occ runs by
# default, ray and flow with the slow tests.
@pytest.mark.parametrize("kind", ["occ", pytest.param("ray", marks=pytest.mark.slow),
                                  pytest.param("flow", marks=pytest.mark.slow)])
def test_eval_json_is_identical_for_1_2_3_processes(sets, kind):
    pred, gt = ("flow_pred", "flow_gt") if kind == "flow" else ("pred", "world")
    # relative paths: the JSON names them, and every run must name the same ones
    args = ["-m", "occ4d.cli", "eval", kind, "--pred", pred, "--gt", gt,
            *(["--mask", "camera"] if kind == "occ" else [])]
    run(*args, "--json", f"{kind}_plain.json", cwd=sets)
    for k in PROCESSES:
        run("-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={k}", *args,
            "--json", f"{kind}_{k}.json", cwd=sets)
    plain = (sets / f"{kind}_plain.json").read_bytes()
    report = json.loads(plain)["results"]
    assert report["samples"] == 4
    figure = {"occ": "mIoU", "ray": "RayIoU", "flow": "mAVE"}[kind]
    assert report[figure] is not None and 0 < report[figure] < (100 if kind == "occ" else 10)
    for k in PROCESSES:
        assert (sets / f"{kind}_{k}.json").read_bytes() == plain, f"{k} process(es) differ from one"
