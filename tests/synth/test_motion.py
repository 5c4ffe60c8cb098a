"""Ego manoeuvres and traffic: smooth bounded kinematics, signals obeyed, boxes never overlap."""

import numpy as np
import pytest

from occ4d.synth.agents import spawn_traffic
from occ4d.synth.ego import BEHAVIOURS, plan_ego
from occ4d.synth.paths import STEP
from occ4d.synth.town import TownConfig, build_town
from occ4d.synth.traffic import DT, Simulation, _overlap

DURATION = 16.0


def ego_track(plan):
    s = plan.s0 + np.concatenate([[0.0], np.cumsum(0.5 * (plan.speed[1:] + plan.speed[:-1]) * DT)])
    x, y, yaw = plan.route.path.pose(s)
    return np.stack([x, y, yaw], 1)


@pytest.mark.parametrize("behaviour", BEHAVIOURS)
def test_ego_behaviours_are_smooth_and_do_what_they_say(behaviour):
    town = build_town(np.random.default_rng(11), TownConfig(nodes=(6, 6)))
    plan = plan_ego(town, behaviour, DURATION, np.random.default_rng(5))
    assert plan.behaviour == behaviour
    v = plan.speed
    assert np.all(v >= 0) and np.all(np.abs(np.diff(v)) / DT <= 3.5 + 1e-9)
    xyy = ego_track(plan)
    yaw_rate = np.diff(np.unwrap(xyy[:, 2])) / DT
    assert np.abs(yaw_rate).max() < 1.0  # rad/s
    assert np.all(np.linalg.norm(np.diff(xyy[:, :2], axis=0), axis=1) <= v[1:] * DT + 0.05)  # no jumps
    turn = np.unwrap(xyy[:, 2])[-1] - xyy[0, 2]
    heading = np.array([np.cos(xyy[0, 2]), np.sin(xyy[0, 2])])
    d = xyy[-1, :2] - xyy[0, :2]
    lateral = heading[0] * d[1] - heading[1] * d[0]
    if behaviour == "left_turn":
        assert turn == pytest.approx(np.pi / 2, abs=0.2)
    elif behaviour == "right_turn":
        assert turn == pytest.approx(-np.pi / 2, abs=0.2)
    elif behaviour == "lane_change":
        assert abs(turn) < 0.05 and abs(abs(lateral) - 3.5) < 0.3
    else:
        assert abs(turn) < 0.05 and abs(lateral) < 0.3
    if behaviour == "accelerate":
        assert v[-1] > v[0] + 5.0
    if behaviour == "brake":
        assert v[-1] < v[0] - 5.0
    if behaviour == "stop_and_go":
        assert v.min() == 0.0 and v[-1] > 3.0 and v[0] > 3.0


def test_traffic_never_overlaps_and_stops_at_red():
    rng = np.random.default_rng(2)
    town = build_town(rng, TownConfig(nodes=(4, 4)))
    plan = plan_ego(town, "straight", 30.0, rng)
    town.signal_hold = plan.holds
    lo = plan.route.path.xy.min(0) - 60
    hi = plan.route.path.xy.max(0) + 60
    agents = spawn_traffic(
        town, (lo[0], lo[1], hi[0], hi[1]), 30.0, rng, plan.route.path, plan.s0, density=2.0
    )
    kinds = {a.kind for a in agents}
    assert {"car", "pedestrian", "tractor", "trailer"} <= kinds
    sim = Simulation(town, plan.agent(), agents, plan.speed)
    prev = sim.poses()
    stopped_at_red = 0
    for _ in range(200):
        sim.advance(1)
        now = sim.poses()
        step = np.linalg.norm(now[:, :2] - prev[:, :2], axis=1)
        assert np.all(step <= np.maximum(sim.v0, now[:, 3]) * DT + 0.06)  # nobody jumps
        half_l, half_w = sim.length / 2 - 0.02, sim.width / 2 - 0.02
        dist = np.linalg.norm(now[:, None, :2] - now[None, :, :2], axis=2)
        reach = np.hypot(half_l, half_w)
        for i, j in zip(*np.nonzero(np.triu(dist < reach[:, None] + reach[None, :], 1)), strict=True):
            if sim.tow[i] == j or sim.tow[j] == i:
                continue
            ci, si, cj, sj = np.cos(now[i, 2]), np.sin(now[i, 2]), np.cos(now[j, 2]), np.sin(now[j, 2])
            assert not _overlap(
                now[i, 0],
                now[i, 1],
                ci,
                si,
                half_l[i],
                half_w[i],
                now[j, 0],
                now[j, 1],
                cj,
                sj,
                half_l[j],
                half_w[j],
            ), (i, j)
        limits = sim.stop_lines()
        front = sim.s + sim.length / 2
        stopped_at_red += int(np.sum((now[:, 3] < 0.1) & np.isfinite(limits) & (limits - front < 3.0)))
        prev = now
    assert stopped_at_red > 0
    # Trailers stay hitched: a fixed arc length behind their tractor.
    for i in np.nonzero(sim.tow >= 0)[0]:
        assert sim.s[sim.tow[i]] - sim.s[i] == pytest.approx(sim.tow_off[i])
    assert STEP > 0
