"""Occupancy flow of the synthetic world (OpenOcc v2 layout, PROTOCOLS §2.4, §3.8): the raster on
hand-built boxes, agent velocities against their paths, and the written tree end to end."""

from pathlib import Path

import numpy as np
import pytest

from occ4d.commands.eval import evaluate
from occ4d.core.grid import OCC3D
from occ4d.core.vocab import IGNORE, OCC3D_VOCAB, OPENOCC_VOCAB, Occ3D, OpenOcc, convert_labels
from occ4d.data.index import load_frame, load_index
from occ4d.io.occ3d import load_labels
from occ4d.io.openocc import load_openocc, save_openocc
from occ4d.synth import generate, simulate_scene, writer
from occ4d.synth.agents import spawn_traffic
from occ4d.synth.ego import plan_ego
from occ4d.synth.paths import STEP
from occ4d.synth.sensing import flow, velocity_to_ego
from occ4d.synth.shapes import KINDS, boxes
from occ4d.synth.town import TownConfig, build_town
from occ4d.synth.traffic import DT, EMERGENCY_DECEL, Simulation
from occ4d.synth.voxelize import fill_boxes, to_ego

SEED, SCENES, FRAMES = 1, 2, 6  # seed 1: a left and a right turn, the ego frame rotating
GAP = writer.KEYFRAME_US / 1e6  # s between keyframes
FLOW_CLASSES = [int(c) for c in OpenOcc if c <= OpenOcc.PEDESTRIAN]  # car .. pedestrian (§3.8)


def drawn(ego, bxs: np.ndarray) -> np.ndarray:
    """Where the synthetic labels put the boxes' classes: fill_boxes on an empty ego grid."""
    grid = np.full(OCC3D.shape, OCC3D_VOCAB.free, np.uint8)
    fill_boxes(grid, OCC3D.range_min[0], OCC3D.range_min[1], OCC3D.voxel_size[0], to_ego(bxs, *ego), True)
    return grid


# ---------------------------------------------------------------------------------------------
# the raster on hand-built boxes


def test_moving_box_in_an_unrotated_ego_frame_carries_its_velocity_exactly():
    ego = (0.0, 0.0, 0.0)
    car = boxes("car", 10.0, 4.0, 0.3, (4.5, 1.8, 1.5))
    out = flow(ego, car, np.repeat([[3.0, -1.5]], len(car), axis=0))
    assert out.shape == (*OCC3D.shape, 2) and out.dtype == np.float32
    on = drawn(ego, car) == Occ3D.CAR
    assert on.sum() > 50
    assert np.array_equal(out[on], np.broadcast_to(np.float32([3.0, -1.5]), (int(on.sum()), 2)))
    assert not out[~on].any()  # exactly 0 everywhere else


def test_rotated_ego_frame_gives_the_rotated_world_velocity():
    yaw = 0.7
    ego = (12.0, -5.0, yaw)
    v_world = np.array([4.0, 2.0])
    bus = boxes("bus", 25.0, 3.0, 1.9, (11.0, 2.5, 3.2))
    out = flow(ego, bus, np.repeat(v_world[None], len(bus), axis=0))
    # R(-yaw) v: the object's own velocity seen from the ego's axes, nothing of the ego's motion.
    by_hand = np.array([np.cos(yaw) * 4.0 + np.sin(yaw) * 2.0, -np.sin(yaw) * 4.0 + np.cos(yaw) * 2.0])
    on = drawn(ego, bus) == Occ3D.BUS
    assert on.sum() > 100
    np.testing.assert_allclose(out[on], np.broadcast_to(by_hand, (int(on.sum()), 2)), rtol=0, atol=1e-6)
    assert np.array_equal(np.unique(out[on], axis=0), velocity_to_ego(v_world, yaw).astype(np.float32))
    assert not out[~on].any()
    # A quarter turn: driving north in the world is driving along ego +x when the ego faces north.
    north = flow((0.0, 0.0, np.pi / 2), boxes("car", 0.0, 10.0, np.pi / 2, (4.5, 1.8, 1.5)), [[0.0, 5.0]] * 2)
    moving = north[np.any(north != 0, axis=-1)]
    assert len(moving) and np.allclose(moving, [5.0, 0.0], atol=1e-6)


def test_static_and_far_boxes_have_no_flow_and_every_part_moves_with_its_agent():
    ego = (0.0, 0.0, -0.4)
    parked = boxes("car", -8.0, 6.0, 1.0, (4.4, 1.8, 1.5))
    truck = boxes("truck", 15.0, -10.0, 2.5, (8.0, 2.5, 3.4))  # two parts: cab and body
    far = boxes("car", 80.0, 0.0, 0.0, (4.4, 1.8, 1.5))  # beyond the view radius: never drawn
    v_truck = np.array([-6.0, 2.5])
    bxs = np.concatenate([parked, truck, far])
    vel = np.concatenate([np.zeros((len(parked), 2)), np.repeat(v_truck[None], len(truck), axis=0),
                          np.repeat([[9.0, 9.0]], len(far), axis=0)])
    out = flow(ego, bxs, vel)
    labels = drawn(ego, np.concatenate([parked, truck]))
    assert (labels == Occ3D.CAR).sum() > 50 and not out[labels == Occ3D.CAR].any()
    on = labels == Occ3D.TRUCK
    assert np.array_equal(np.unique(out[on], axis=0), velocity_to_ego(v_truck, ego[2]).astype(np.float32))
    assert np.array_equal(np.any(out != 0, axis=-1), on)
    assert not flow(ego, parked, np.zeros((len(parked), 2))).any()
    assert not flow(ego, np.zeros((0, 8)), np.zeros((0, 2))).any()


def test_agent_velocity_is_the_time_derivative_of_its_path_pose():
    rng = np.random.default_rng(2)
    town = build_town(rng, TownConfig(nodes=(4, 4)))
    plan = plan_ego(town, "left_turn", 20.0, rng)
    town.signal_hold = plan.holds
    lo, hi = plan.route.path.xy.min(0) - 60, plan.route.path.xy.max(0) + 60
    agents = spawn_traffic(town, (*lo, *hi), 20.0, rng, plan.route.path, plan.s0, density=2.0)
    sim = Simulation(town, plan.agent(), agents, plan.speed)
    sim.advance(40)
    vel = sim.velocities()
    h = 1e-4  # m: a central difference inside one path segment (Path.pose is linear there)
    checked = 0
    for i, ag in enumerate(sim.agents):
        f = sim.s[i] / STEP
        if min(f % 1, 1 - f % 1) < 1e-2:
            continue  # at a path sample the derivative changes segment
        x0, y0, _ = ag.route.path.pose(sim.s[i] - h)
        x1, y1, _ = ag.route.path.pose(sim.s[i] + h)
        fd = sim.v[i] * np.array([x1 - x0, y1 - y0]) / (2 * h)
        np.testing.assert_allclose(vel[i], fd, rtol=0, atol=1e-6)
        checked += 1
    assert checked > 20 and np.any(sim.v == 0) and not vel[sim.v == 0].any()
    trailers = np.nonzero(sim.tow >= 0)[0]
    assert len(trailers)
    for i in trailers:  # towed at the tractor's speed along its own stretch of the route
        assert np.linalg.norm(vel[i]) == pytest.approx(sim.v[sim.tow[i]], rel=1e-3)
    # At the end of its route a driven agent is held there (traffic.step): it no longer moves.
    j = next(k for k in range(1, len(sim.agents)) if sim.tow[k] < 0 and sim.v[k] > 0)
    sim.s[j] = STEP * (sim.count[j] - 1) - sim.length[j]
    assert not sim.velocities()[j].any()


# ---------------------------------------------------------------------------------------------
# the written world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("flow_world")
    generate(root, scenes=SCENES, frames=FRAMES, seed=SEED, val_fraction=0.5, progress=False)
    return root


def openocc_records(root: Path) -> dict:
    infos = [root / f"occ4d_infos_{split}_occ.pkl" for split in ("train", "val")]
    return {r.token: r for info in infos for r in load_index(info)}


def test_openocc_labels_load_and_agree_with_the_occ3d_labels(world):
    records = openocc_records(world)
    assert len(records) == SCENES * FRAMES
    moving = 0
    for occ3d in load_index(world):
        rec = records[occ3d.token]
        assert rec.fmt == "openocc" and rec.scene == occ3d.scene
        assert rec.path == world / "openocc_v2" / occ3d.scene / occ3d.token / "labels.npz"
        np.testing.assert_array_equal(rec.ego2global, occ3d.ego2global)
        frame = load_frame(rec)  # the project's OpenOcc v2 reader (occ4d.io.openocc.load_openocc)
        assert frame.vocab == OPENOCC_VOCAB and frame.flow.dtype == np.float32
        with np.load(rec.path) as z:
            assert sorted(z.files) == ["flow", "semantics"] and z["semantics"].dtype == np.uint8
        labels = load_labels(occ3d.path).semantics
        # Through the one mapping table; Occ3D "others" has no OpenOcc class and becomes free.
        expected = convert_labels(labels, OCC3D_VOCAB, OPENOCC_VOCAB)
        assert np.array_equal(expected == IGNORE, labels == Occ3D.OTHERS)
        expected[labels == Occ3D.OTHERS] = OpenOcc.FREE
        assert np.array_equal(frame.semantics, expected)
        nonzero = np.any(frame.flow != 0, axis=-1)
        assert np.isin(frame.semantics[nonzero], FLOW_CLASSES).all()  # static classes: exactly 0
        moving += int(nonzero.sum())
    assert moving > 1000


def test_agent_flow_matches_its_displacement_between_keyframes(world):
    """Flow against displacement over 0.5 s, with each keyframe's flow rotated out of its own ego
    frame by that keyframe's written pose (ego-motion compensation).

    The traffic integrates arc length with the trapezoid rule at DT = 0.1 s, so the mean velocity
    over a keyframe gap equals the mean of the two keyframe velocities exactly while acceleration
    is constant. Otherwise, with acceleration in [m, M], five steps differ from one trapezoid by at
    most 4 * DT**2 * (M - m) metres (the speeds' largest departure from a straight line between
    the keyframes, summed over the four inner steps), i.e. 0.08 * (M - m) m/s; M is the strongest
    kind's acceleration and m = -EMERGENCY_DECEL. Curving paths add the gap between chord and mean
    tangent, v * theta**2 / 12 for a heading change theta; at the 2.5 m/s^2 lateral limit that is
    under 0.03 m/s, allowed for with 0.05."""
    records = openocc_records(world)
    bound = 4 * DT**2 * (max(k.accel for k in KINDS.values()) + EMERGENCY_DECEL) / GAP + 0.05
    errors = []
    for scene in range(SCENES):
        seen = {}

        def grab(f, world_map, ego, agents, seen=seen):
            seen[f] = dict(agents)

        for _ in simulate_scene(SEED, scene, FRAMES, render=grab):
            pass
        frames = [load_frame(records[writer.token(SEED, scene, f)]) for f in range(FRAMES)]
        for f in range(FRAMES - 1):
            for agent in set(seen[f]) & set(seen[f + 1]):
                first = seen[f][agent][0]
                if int(first[7]) in (Occ3D.TRUCK, Occ3D.CONSTRUCTION_VEHICLE):
                    continue  # their first box is the cab, ahead of the centre whose velocity flows
                world_v = []
                for k in (f, f + 1):
                    frame, box = frames[k], seen[k][agent][0]
                    pose = frame.ego2global
                    yaw = np.arctan2(pose[1, 0], pose[0, 0])
                    cx, cy, _, _, _, z0, z1, _ = to_ego(box[None], pose[0, 3], pose[1, 3], yaw)[0]
                    ijk = np.floor((np.array([cx, cy, (z0 + z1) / 2]) - OCC3D.range_min) / OCC3D.voxel_size)
                    i, j, k_mid = ijk.astype(int)
                    if not (0 <= i < OCC3D.shape[0] and 0 <= j < OCC3D.shape[1]):
                        break  # the agent's centre is outside the grid at this keyframe
                    v = frame.flow[i, j, k_mid]
                    world_v.append(pose[:2, :2] @ v.astype(np.float64))
                if len(world_v) < 2:
                    continue
                displacement = (seen[f + 1][agent][0][:2] - first[:2]) / GAP
                errors.append(np.linalg.norm(displacement - (world_v[0] + world_v[1]) / 2))
    errors = np.asarray(errors)
    assert len(errors) > 50
    assert errors.max() <= bound, (errors.max(), bound)
    assert np.median(errors) < 0.02  # mostly constant acceleration: the trapezoid is then exact


def test_eval_flow_scores_the_written_tree_against_itself(world, tmp_path):
    # --gt / --pred the world's root: the flow evaluation finds the openocc_v2/ tree beside gts/.
    report = evaluate("flow", pred=world, gt=world, split="val")
    res = report["results"]
    assert res["samples"] == FRAMES and res["RayIoU"] == 1.0
    assert res["mAVE"] == 0.0 and res["OccScore"] == 1.0
    assert any("openocc_v2" in n for n in report["notes"])
    # The OpenOcc info file names the same tree directly; half the flow is no longer perfect.
    for rec in load_index(world / "occ4d_infos_val_occ.pkl"):
        frame = load_openocc(rec.path)
        frame.flow = frame.flow * 0.5
        save_openocc(tmp_path / "pred" / "openocc_v2" / rec.scene / rec.token / "labels.npz", frame)
    half = evaluate("flow", pred=tmp_path / "pred", gt=world / "occ4d_infos_val_occ.pkl")["results"]
    assert half["RayIoU"] == 1.0 and half["mAVE"] > 0.1 and half["OccScore"] < 1.0
