"""Prompts that would drive the ego through a wall, a tree, a barrier or a cone are refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from occ4d.core.grid import OCC3D
from occ4d.core.vocab import Occ3D
from occ4d.models.world.prompts import prompt_obstacle, prompt_trajectory

FREE = int(Occ3D.FREE)


def street(wall_x: float | None = None, cls: int = int(Occ3D.MANMADE), layers=(0, 8)) -> np.ndarray:
    """An empty road (layer 0) with, optionally, a 0.4 m thick obstacle across it at ``wall_x``."""
    g = np.full(OCC3D.shape, FREE, dtype=np.uint8)
    g[:, :, 0] = int(Occ3D.DRIVEABLE_SURFACE)
    if wall_x is not None:
        ix = int(np.floor((wall_x - OCC3D.range_min[0]) / OCC3D.voxel_size[0]))
        g[ix, :, layers[0] : layers[1]] = cls
    return g


def test_straight_into_a_wall_is_caught_at_the_first_step_that_reaches_it():
    # straight: 6 m/s at 2 Hz, 3 m per step; the ego box reaches 2.04 m ahead of its centre
    path = prompt_trajectory("straight", 8)
    assert prompt_obstacle(street(), path) is None
    k, what, x, y = prompt_obstacle(street(12.0), path)
    assert (k, what) == (4, "manmade") and x == pytest.approx(12.0) and y == pytest.approx(0.0)
    k, _, _, _ = prompt_obstacle(street(10.0), path)
    assert k == 3  # 9 m +- 2.04 covers the wall at 10 m; 6 m +- 2.04 does not


def test_stopping_short_of_the_wall_passes():
    # stop: brakes at 2 m/s^2 from 6 m/s, 9 m in all, so the box's front ends at 11.04 m
    assert prompt_obstacle(street(12.0), prompt_trajectory("stop", 10)) is None
    assert prompt_obstacle(street(10.4), prompt_trajectory("stop", 10)) is not None


def test_only_static_obstacles_at_body_height_block():
    path = prompt_trajectory("straight", 8)
    assert prompt_obstacle(street(12.0, int(Occ3D.VEGETATION), layers=(8, 12)), path) is None  # a crown
    assert prompt_obstacle(street(12.0, int(Occ3D.CAR)), path) is None  # a car may drive off
    for cls in (Occ3D.BARRIER, Occ3D.TRAFFIC_CONE, Occ3D.VEGETATION):
        hit = prompt_obstacle(street(12.0, int(cls), layers=(1, 3)), path)
        assert hit is not None and hit[1] == Occ3D(int(cls)).name.lower()


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="current frame"):
        prompt_obstacle(np.zeros((4, 4, 4), np.uint8), prompt_trajectory("straight", 3))
    bad = prompt_trajectory("straight", 3)
    bad[1, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        prompt_obstacle(street(), bad)


def test_generate_refuses_the_prompt_with_a_message(monkeypatch, tmp_path):
    from occ4d.models.world import generation

    opening = torch.from_numpy(np.stack([street(7.0)] * 4))
    poses = np.zeros((4, 3))
    monkeypatch.setattr(generation, "load_opening", lambda *a, **k: (opening, poses, "walled"))
    kw = dict(opening="somewhere", traj="straight", frames=6, out=str(tmp_path / "out"), control=False)
    with pytest.raises(SystemExit, match=r"into manmade at prompt step 2 \(x 6.0 m, y 0.0 m"):
        generation.generate_clips("ego-warp", **kw)
    assert not (tmp_path / "out").exists()  # nothing written before the refusal
    summary = generation.generate_clips("ego-warp", allow_collision=True, **kw)
    assert len(summary["clips"]) == 1
