"""SIGKILL in the middle of a write: ``occ4d synth`` and ``occ4d train`` leave only whole files, and
the rerun (synth) or ``--resume`` (train) ends bit-identical to an unbroken run.

Each kill lands while a file is being written: the test polls the output folder and kills the
moment a temporary file (``.<name>.<random>.tmp``, occ4d's atomic writer) or a new checkpoint
appears. Temporary files are hidden names that end in ``.tmp``, which no reader globs; the next run
removes them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from occ4d.io.infos import load_pkl
from occ4d.io.occ3d import LABEL_KEYS

SYNTH = ("--scenes", "2", "--frames", "4", "--seed", "0")
TEMP = re.compile(r"^\..+\.tmp$")  # occ4d.io.atomic's temporary files
# machine figures (wall clock, memory), the only ones that may differ
TIMING = ("time", "samples_per_s", "frames_per_s", "peak_rss_MiB")
# The tiny tokenizer run of tests/train/_train_tiny.py with a checkpoint every step and an
# evaluation every 2 steps, so kills can land in a checkpoint write and in an evaluation.
TRAIN = (
    "--preset", "tiny-vqvae", "--model.channels", "8", "--model.latent-dim", "16",
    "--model.codebook-size", "32", "--model.train-crop", "32",
    "--clips.batch-size", "2", "--clips.max-val-samples", "1",
    "--optim.total-samples", "12", "--optim.warmup-samples", "4", "--optim.ema-decay", "0.9",
    "--run.ckpt-every", "2", "--run.log-every", "2", "--run.eval-every", "4",
    "--run.progress", "False", "--run.keep-last", "2",
)


def occ4d(*args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "occ4d.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen) -> str:
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, out
    return out


def files(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in sorted(root.rglob("*")) if p.is_file()}


def kill_when(proc: subprocess.Popen, root: Path, seen, timeout: float = 120.0) -> set[str]:
    """SIGKILL ``proc`` the moment ``seen(new)`` holds for the relative paths of the files under
    ``root`` that were not there before; returns the names at the kill. Fails if the process ends
    first."""
    before = set(files(root)) if root.is_dir() else set()
    deadline = time.time() + timeout
    while True:
        names = set(files(root)) if root.is_dir() else set()
        if seen(names - before):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return names
        assert proc.poll() is None, f"finished before the kill:\n{proc.communicate()[0]}"
        assert time.time() < deadline, "no write seen in time"
        time.sleep(0.0005)


def temps(names) -> list[str]:
    return [n for n in names if TEMP.match(Path(n).name)]


def assert_whole_world(root: Path) -> None:
    """Every file a killed synth left is whole; temporaries are hidden ``.tmp`` names only."""
    for name, path in files(root).items():
        if TEMP.match(path.name):
            continue
        if path.suffix == ".npz" and name.startswith("openocc_v2/"):
            with np.load(path, allow_pickle=False) as z:
                assert z["semantics"].shape == (200, 200, 16), name
                assert z["flow"].shape == (200, 200, 16, 2), name
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                assert set(LABEL_KEYS) <= set(z.files), name
                for k in LABEL_KEYS:
                    assert z[k].shape == (200, 200, 16), name
        elif path.suffix == ".pkl":
            assert load_pkl(path)["infos"], name
        elif path.suffix == ".json":
            json.loads(path.read_text())
        else:
            raise AssertionError(f"unexpected file {name}")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """The unbroken synth run, also the training data."""
    out = tmp_path_factory.mktemp("kill") / "A"
    finish(occ4d("synth", "--out", str(out), *SYNTH))
    return out


def test_killed_synth_rerun_is_bit_identical(world, tmp_path):
    out = tmp_path / "B"
    # first kill: mid-write of the first label file; second: mid-write in the second scene
    stages = [lambda n: bool(temps(n)),
              lambda n: any(t.startswith("gts/scene-0001/") for t in temps(n))]
    for seen in stages:
        proc = occ4d("synth", "--out", str(out), *SYNTH)
        names = kill_when(proc, out, seen)
        assert "world.json" not in names  # really stopped mid-run
        assert_whole_world(out)
    finish(occ4d("synth", "--out", str(out), *SYNTH))
    a, b = files(world), files(out)
    assert not temps(b), "the rerun left temporary files"
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name].read_bytes() == b[name].read_bytes(), f"{name} differs after the rerun"


def assert_whole_run(run: Path) -> None:
    """Every file a killed training run left is whole (a trailing half line of metrics.jsonl aside)."""
    for name, path in files(run).items():
        if TEMP.match(path.name):
            continue
        if path.suffix == ".safetensors":
            assert load_file(str(path)), name
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.name == "metrics.jsonl":
            text = path.read_text()
            lines = text.split("\n")
            if not text.endswith("\n"):
                lines = lines[:-1]  # a line cut by the kill: resume drops it
            for line in lines:
                if line:
                    json.loads(line)
        else:
            raise AssertionError(f"unexpected file {name}")


def read_log(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def test_killed_training_resumes_bit_identical(world, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    straight = occ4d("train", "tokenizer", "--data", str(world), "--out", str(a), *TRAIN)

    def writing(step: int):
        """A checkpoint of ``step`` or later is being written: its temporary file or its tensors."""
        def seen(names) -> bool:
            ckpt = re.compile(r"^\.?ckpt-(\d{8})\.safetensors(\.\w{8}\.tmp)?$")
            return any(int(m.group(1)) >= step for n in names if (m := ckpt.match(n)))
        return seen

    def evaluating(step: int):
        """Step ``step`` is logged and its evaluation (which comes before its checkpoint) runs."""
        def seen(names) -> bool:
            log = b / "metrics.jsonl"
            return log.exists() and f'"kind": "train", "step": {step},' in log.read_text()
        return seen

    # two kills, each followed by --resume: in the write of the second checkpoint, and in the
    # evaluation of step 4
    stages = [writing(2), evaluating(4)]
    caught = []
    for i, seen in enumerate(stages):
        proc = occ4d("train", "tokenizer", "--data", str(world), "--out", str(b), *TRAIN,
                     *(["--resume"] if i else []))
        names = kill_when(proc, b, seen)
        caught.append(temps(names))
        assert_whole_run(b)
    assert '"kind": "eval", "step": 4,' not in (b / "metrics.jsonl").read_text()  # killed in it
    print("temporary files seen at the kills:", caught)
    out = finish(occ4d("train", "tokenizer", "--data", str(world), "--out", str(b), *TRAIN, "--resume"))
    assert "resumed ckpt-" in out
    finish(straight)

    assert not temps(files(b)), "resume left temporary files"
    assert sorted(files(a)) == sorted(files(b))
    final = "ckpt-00000006.safetensors"
    ta, tb = load_file(str(a / final)), load_file(str(b / final))
    assert ta.keys() == tb.keys()
    for name in ta:
        assert torch.equal(ta[name], tb[name]), f"{name} differs after the kills and resumes"
    la, lb = read_log(a), read_log(b)
    assert [r for r in la if r["kind"] == "eval"] == [r for r in lb if r["kind"] == "eval"]
    assert la == lb  # the resumed log reads as one unbroken run
