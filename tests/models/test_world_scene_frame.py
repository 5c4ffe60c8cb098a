"""Scene-centric generation: clips resampled into a reference ego frame and moved along the prompt."""

from __future__ import annotations

import math

import pytest
import torch

from occ4d.core.grid import GridSpec
from occ4d.core.vocab import OCC3D_DYNAMIC, Occ3D
from occ4d.models.world import GeneratorConfig, LatentCodec, OccGenerator
from occ4d.models.world.embed import extend_traj
from occ4d.models.world.motion import GROUND
from occ4d.models.world.scene_frame import (
    check_traj,
    from_reference,
    reference_index,
    share_static,
    to_reference,
)
from tests.models.test_world import tiny_dit, tiny_tokenizer, train_steps

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models (tests/conftest.py)

FREE = int(Occ3D.FREE)
SHAPE = (16, 16, 4)
GRID = GridSpec("test", SHAPE, (0.4, 0.4, 0.4), (-3.2, -3.2, -1.0))


def static_world(frames: int = 6, step: int = 2, seed: int = 0):
    """Frames cut from one static world by an ego driving along x by ``step`` voxels a frame:
    (1, T, X, Y, Z) labels, their (1, T, 3) trajectory relative to frame 0, and the world."""
    g = torch.Generator().manual_seed(seed)
    world = torch.randint(0, 17, (16 + step * frames, 16, 4), generator=g).to(torch.uint8)
    occ = torch.stack([world[step * t : step * t + 16] for t in range(frames)])[None]
    traj = torch.zeros(1, frames, 3)
    traj[0, :, 0] = torch.arange(frames) * step * 0.4
    return occ, traj, world


def test_a_static_world_aligns_exactly_where_the_frames_overlap():
    occ, traj, _ = static_world()
    ref = reference_index(occ.shape[1])
    aligned = to_reference(occ, traj, ref, grid=GRID)
    for t in range(occ.shape[1]):
        # frame t covers the reference frame's rows from (t - ref) * step on
        shift = 2 * (t - ref)
        rows = slice(max(shift, 0), 16 + min(shift, 0))
        assert torch.equal(aligned[0, t, rows], occ[0, ref, rows])
        other = torch.ones(16, dtype=torch.bool)
        other[rows] = False
        assert torch.all(aligned[0, t, other] == FREE)


def test_moving_the_reference_frame_along_the_path_gives_every_frame():
    """The geometric conditioning is exact for a static world: the reference frame alone, moved
    along the true path, is each frame wherever the reference grid reaches."""
    occ, traj, _ = static_world()
    ref = reference_index(occ.shape[1])
    moved = from_reference(occ[:, ref : ref + 1].expand_as(occ), traj, ref, grid=GRID, extrude=())
    for t in range(occ.shape[1]):
        shift = 2 * (t - ref)
        rows = slice(max(-shift, 0), 16 - max(shift, 0))
        assert torch.equal(moved[0, t, rows], occ[0, t, rows])
    # the round trip frame -> reference -> frame is the identity on the overlap
    back = from_reference(to_reference(occ, traj, ref, grid=GRID), traj, ref, grid=GRID, extrude=())
    assert torch.equal(back[0, ref], occ[0, ref])


def test_a_left_turn_swings_the_scene_to_the_right_and_the_ground_continues():
    scene = torch.full((1, 2, *SHAPE), FREE, dtype=torch.uint8)
    scene[..., 0] = int(Occ3D.DRIVEABLE_SURFACE)
    scene[:, :, 12:14, 7:9, 1] = int(Occ3D.CAR)  # a car ahead of the ego, on the centre line
    traj = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.0, math.pi / 2]]])  # turn left on the spot
    moved = from_reference(scene, traj, 0, grid=GRID)
    car = (moved[0, 1, :, :, 1] == int(Occ3D.CAR)).nonzero()
    # x forward, y left: after a left turn, what was ahead lies to the right (y < 0, low indices)
    assert len(car) == 4 and car[:, 1].max() < 8 and car[:, 0].min() >= 7 and car[:, 0].max() <= 8
    assert torch.equal(moved[0, 0], scene[0, 0])  # the reference frame itself stays
    drive = torch.tensor([[[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]]])  # 5 voxels forward
    ahead = from_reference(scene, drive, 0, grid=GRID)
    assert torch.all(ahead[0, 1, 11:, :, 0] == int(Occ3D.DRIVEABLE_SURFACE))  # extruded ground
    assert torch.all(ahead[0, 1, 11:, :, 1:] == FREE)
    assert int(Occ3D.DRIVEABLE_SURFACE) in GROUND


def test_a_window_shares_its_reference_frames_static_scene():
    scene = torch.full((1, 3, *SHAPE), FREE, dtype=torch.uint8)
    scene[:, 1, 0:4, :, 1] = int(Occ3D.MANMADE)  # the reference frame's building ...
    scene[:, 1, 8:10, 8:10, 1] = int(Occ3D.CAR)  # ... and its car
    scene[:, 0, 12:16, :, 1] = int(Occ3D.VEGETATION)  # another frame drew trees instead
    scene[:, 0, 5:7, 5:7, 1] = int(Occ3D.PEDESTRIAN)  # and a walker
    out = share_static(scene, 1)
    assert torch.equal(out[:, 1], scene[:, 1])  # the reference frame itself is unchanged
    assert torch.all(out[:, :, 0:4, :, 1] == int(Occ3D.MANMADE))  # every frame has its building
    assert not (out[:, 0] == int(Occ3D.VEGETATION)).any()
    assert torch.all(out[:, 0, 5:7, 5:7, 1] == int(Occ3D.PEDESTRIAN))  # own road users are kept
    assert torch.all(out[:, 0, 8:10, 8:10, 1] == FREE) and torch.all(out[:, 2, 8:10, 8:10, 1] == FREE)


def test_bad_trajectories_are_refused_in_one_line():
    occ, traj, _ = static_world(frames=4)
    with pytest.raises(ValueError, match="NaN"):
        to_reference(occ, traj.clone().index_fill_(1, torch.tensor([2]), float("nan")), 1, grid=GRID)
    with pytest.raises(ValueError, match="fewer than"):
        from_reference(occ, traj[:, :2], 1, grid=GRID)
    with pytest.raises(ValueError, match=r"\(B, T, 3\)"):
        check_traj(torch.zeros(4, 3), 2)


def scene_generator(occ) -> OccGenerator:
    codec = LatentCodec(tiny_tokenizer())
    codec.fit([occ[:, :4]])
    return OccGenerator(GeneratorConfig(dit=tiny_dit(4), frames=4, scene_centric=True, grid=GRID), codec)


def test_scene_centric_training_sees_the_aligned_clip():
    occ, traj, _ = static_world(frames=4)
    gen = scene_generator(occ)
    torch.manual_seed(0)
    with torch.no_grad():  # a DiT that is not zero at the output (adaLN-Zero starts there)
        for p in gen.dit.parameters():
            p.normal_(0.0, 0.05)
    plain = OccGenerator(GeneratorConfig(dit=tiny_dit(4), frames=4, grid=GRID), gen.codec)
    plain.dit.load_state_dict(gen.dit.state_dict())
    aligned = to_reference(occ, traj, reference_index(4), grid=GRID)
    a, _ = gen.loss(occ, traj, torch.Generator().manual_seed(3))
    b, _ = plain.loss(aligned, traj, torch.Generator().manual_seed(3))
    c, _ = plain.loss(occ, traj, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not torch.equal(a, c)
    losses = train_steps(gen, lambda g: gen.loss(occ, traj, g), steps=6)
    assert losses[-1] < losses[0]


def test_scene_centric_clips_move_along_the_prompt():
    occ, traj, _ = static_world(frames=4)
    gen = scene_generator(occ).eval()
    left = torch.tensor([[[0.0, 0.0, 0.0], [1.2, 0.2, 0.3], [2.2, 0.8, 0.7], [2.8, 1.8, 1.2]]])
    kw = dict(sampler="ddim", steps=2, frames=4)
    moved = gen.generate(left, generator=torch.Generator().manual_seed(5), **kw)
    still = gen.generate(left, generator=torch.Generator().manual_seed(5), move=False, **kw)
    assert moved.shape == still.shape == (1, 4, *SHAPE) and moved.dtype == torch.uint8
    assert torch.equal(moved, from_reference(still, left, reference_index(4), grid=GRID))
    static = still[:, reference_index(4)]
    # one static scene per window: wherever no frame drew a road user, every frame is the reference's
    dyn = torch.isin(still, torch.tensor([int(c) for c in OCC3D_DYNAMIC], dtype=still.dtype)).any(1)
    for t in range(4):
        assert torch.equal(still[:, t][~dyn], static[~dyn])
    stop = gen.generate(torch.zeros(1, 4, 3), generator=torch.Generator().manual_seed(5), **kw)
    assert torch.equal(stop, gen.generate(torch.zeros(1, 4, 3), generator=torch.Generator().manual_seed(5),
                                          move=False, **kw))  # standing still moves nothing
    long = gen.generate(left[:, :3], frames=7, generator=torch.Generator().manual_seed(5), sampler="ddim",
                        steps=2)
    assert long.shape == (1, 7, *SHAPE)
    first = gen.generate(extend_traj(left[:, :3], 4), generator=torch.Generator().manual_seed(5), **kw)
    assert torch.equal(long[:, :4], first)  # later windows keep the frames already made
    with pytest.raises(ValueError, match="NaN"):
        gen.generate(torch.full((1, 4, 3), float("nan")), generator=torch.Generator().manual_seed(0), **kw)
