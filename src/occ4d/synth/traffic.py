"""Traffic simulation: every agent follows its route with the intelligent driver model (IDM),
stops at red signals, and yields to whatever stands in the corridor ahead of it.

Per 0.1 s step (numba):
1. Each agent scans its own path ahead (1 m samples) for another agent's box widened by its own
   half width: the first hit is the leader; a red stop line is a standing leader too.
2. IDM acceleration (Treiber et al. 2000) from the gap, clamped to the kind's limits; the ego
   tracks its planned speed instead of a desired speed, but the same interaction term applies.
3. Agents move one by one; a move that would make two boxes overlap is refused (the agent stops
   where it is), so boxes never overlap and nobody ever jumps.
Trailers are not driven: each sits a fixed arc length behind its tractor on the same path.
"""

from __future__ import annotations

from dataclasses import replace

import numba
import numpy as np

from occ4d.synth.agents import Agent
from occ4d.synth.paths import STEP, speed_limits
from occ4d.synth.shapes import KINDS
from occ4d.synth.town import Town

DT = 0.1  # s per simulation step
LATERAL_ACCEL = 2.5  # m/s^2 allowed in curves (sets turn speeds)
EMERGENCY_DECEL = 7.0  # m/s^2, physical braking limit
COMFORT_DECEL = 3.5  # m/s^2: beyond this a driver facing amber goes on


@numba.njit(cache=True)
def _pose(pxy, pyaw, start, count, s):
    f = min(max(s, 0.0), STEP * (count - 1)) / STEP
    i = min(int(f), count - 2)
    w = f - i
    a, b = start + i, start + i + 1
    x = pxy[a, 0] * (1 - w) + pxy[b, 0] * w
    y = pxy[a, 1] * (1 - w) + pxy[b, 1] * w
    d = pyaw[b] - pyaw[a]
    return x, y, pyaw[a] + w * d


@numba.njit(cache=True)
def _overlap(xa, ya, ca, sa, la, wa, xb, yb, cb, sb, lb, wb) -> bool:
    """Separating-axis test of two oriented rectangles (centre, cos/sin of yaw, half sizes)."""
    dx, dy = xb - xa, yb - ya
    for k in range(4):
        if k == 0:
            ux, uy = ca, sa
        elif k == 1:
            ux, uy = -sa, ca
        elif k == 2:
            ux, uy = cb, sb
        else:
            ux, uy = -sb, cb
        ra = la * abs(ca * ux + sa * uy) + wa * abs(-sa * ux + ca * uy)
        rb = lb * abs(cb * ux + sb * uy) + wb * abs(-sb * ux + cb * uy)
        if abs(dx * ux + dy * uy) > ra + rb:
            return False
    return True


@numba.njit(cache=True)
def step(
    pxy,
    pyaw,
    pcap,
    start,
    count,
    s,
    v,
    length,
    width,
    v0,
    amax,
    bdec,
    headway,
    gap0,
    tow,
    tow_off,
    s_stop,
    a_plan,
    is_ego,
    dt,
):
    """Advance all agents one step in place. ``a_plan`` (N,) is used where ``is_ego``."""
    n = len(s)
    xs, ys, yaws = np.empty(n), np.empty(n), np.empty(n)
    for i in range(n):
        xs[i], ys[i], yaws[i] = _pose(pxy, pyaw, start[i], count[i], s[i])
    acc = np.zeros(n)
    for i in range(n):
        if tow[i] >= 0:
            continue
        front = s[i] + length[i] / 2
        look = min(8.0 + v[i] * headway[i] + v[i] * v[i] / (2 * bdec[i]) + 10.0, 70.0)
        gap = s_stop[i] - front
        v_lead = 0.0
        near = np.empty(n, np.int64)
        m = 0
        for j in range(n):
            if j == i or tow[j] == i or tow[i] == j:
                continue
            r = look + length[i] + length[j]
            if (xs[j] - xs[i]) ** 2 + (ys[j] - ys[i]) ** 2 < r * r:
                near[m] = j
                m += 1
        a = 0.5
        end = STEP * (count[i] - 1)
        while a <= look and m > 0:
            qa = front + a
            if qa > end:
                break
            qx, qy, qyaw = _pose(pxy, pyaw, start[i], count[i], qa)
            hit = -1
            for t in range(m):
                j = near[t]
                c, sn = np.cos(yaws[j]), np.sin(yaws[j])
                dx, dy = qx - xs[j], qy - ys[j]
                lx = c * dx + sn * dy
                ly = -sn * dx + c * dy
                if abs(lx) <= length[j] / 2 + 0.3 and abs(ly) <= width[j] / 2 + width[i] / 2 + 0.25:
                    hit = j
                    break
            if hit >= 0:
                if a - 0.3 < gap:
                    gap = a - 0.3
                    v_lead = max(v[hit] * np.cos(yaws[hit] - qyaw), 0.0)
                break
            a += 1.0
        cap = pcap[start[i] + min(int(s[i] / STEP), count[i] - 1)]
        want = min(v0[i], cap)
        gap = max(gap, 0.05)
        sstar = gap0[i] + max(
            0.0, v[i] * headway[i] + v[i] * (v[i] - v_lead) / (2 * np.sqrt(amax[i] * bdec[i]))
        )
        interact = (sstar / gap) ** 2
        if is_ego[i]:
            acc[i] = min(a_plan[i], amax[i] * (1.0 - interact))
        else:
            acc[i] = amax[i] * (1.0 - (v[i] / max(want, 0.1)) ** 4 - interact)
            if v[i] > cap:  # curvature ahead: brake towards the cap
                acc[i] = min(acc[i], (cap - v[i]) / dt)
        acc[i] = min(max(acc[i], -EMERGENCY_DECEL), amax[i])
    for i in range(n):
        if tow[i] >= 0:
            continue
        nv = max(v[i] + acc[i] * dt, 0.0)
        ns = s[i] + 0.5 * (v[i] + nv) * dt
        ns = min(ns, STEP * (count[i] - 1) - length[i])
        if ns < s[i]:
            ns, nv = s[i], 0.0
        nx, ny, nyaw = _pose(pxy, pyaw, start[i], count[i], ns)
        c, sn = np.cos(nyaw), np.sin(nyaw)
        blocked = False
        for j in range(n):
            if j == i or tow[j] == i:
                continue
            if _overlap(
                nx,
                ny,
                c,
                sn,
                length[i] / 2,
                width[i] / 2,
                xs[j],
                ys[j],
                np.cos(yaws[j]),
                np.sin(yaws[j]),
                length[j] / 2,
                width[j] / 2,
            ):
                blocked = True
                break
        if blocked:
            v[i] = 0.0
            continue
        s[i], v[i] = ns, nv
        xs[i], ys[i], yaws[i] = nx, ny, nyaw
        for j in range(n):  # the trailer follows at once, so later movers see it where it is
            if tow[j] == i:
                s[j] = s[i] - tow_off[j]
                v[j] = v[i]
                xs[j], ys[j], yaws[j] = _pose(pxy, pyaw, start[j], count[j], s[j])


class Simulation:
    """All agents of one scene; agent 0 is the ego, driven by a planned speed profile."""

    def __init__(self, town: Town, ego: Agent, others: list[Agent], ego_plan: np.ndarray):
        # Agent.tow indexes ``others``; here everyone moves up one place behind the ego.
        agents = [ego] + [a if a.tow < 0 else replace(a, tow=a.tow + 1) for a in others]
        self.town, self.agents = town, agents
        self.plan = np.asarray(ego_plan, dtype=np.float64)  # planned ego speed per step (m/s)
        n = len(agents)
        xy, yaw, cap, start, count = [], [], [], [], []
        off = 0
        for ag in agents:
            p = ag.route.path
            spec = KINDS[ag.kind if ag.kind in KINDS else "car"]
            xy.append(p.xy)
            yaw.append(p.yaw)
            decel = spec.decel if spec.decel > 0 else 2.5
            cap.append(speed_limits(p, max(ag.v_max, 0.1), LATERAL_ACCEL, decel))
            start.append(off)
            count.append(len(p.xy))
            off += len(p.xy)
        self.pxy, self.pyaw, self.pcap = np.concatenate(xy), np.concatenate(yaw), np.concatenate(cap)
        self.start, self.count = np.array(start, np.int64), np.array(count, np.int64)
        self.s = np.array([a.s for a in agents], np.float64)
        self.v = np.array([a.v for a in agents], np.float64)
        self.length = np.array([a.size[0] for a in agents])
        self.width = np.array([a.size[1] for a in agents])
        self.v0 = np.array([a.v_max for a in agents])
        specs = [KINDS.get(a.kind, KINDS["car"]) for a in agents]
        self.amax = np.array([max(k.accel, 0.5) for k in specs])
        self.bdec = np.array([max(k.decel, 1.0) for k in specs])
        self.headway = np.array([k.headway for k in specs])
        self.gap0 = np.array([k.min_gap for k in specs])
        self.tow = np.array([a.tow for a in agents], np.int64)
        self.tow_off = np.array([a.tow_offset for a in agents])
        self.is_ego = np.zeros(n, np.bool_)
        self.is_ego[0] = True
        self.amax[0] = 3.0
        self.next_stop = np.zeros(n, np.int64)
        self.t = 0.0
        self.k = 0
        self._limit_start_speeds()

    def _limit_start_speeds(self) -> None:
        """Nobody starts too fast to stop at a red light ahead."""
        stops = self.stop_lines()
        for i in range(len(self.agents)):
            gap = stops[i] - (self.s[i] + self.length[i] / 2)
            if i > 0 and np.isfinite(gap):
                self.v[i] = min(self.v[i], np.sqrt(2 * 2.0 * max(gap - 2.0, 0.0)))

    def stop_lines(self) -> np.ndarray:
        """Arc length (N,) at which each agent must stand still this step (inf: none)."""
        out = np.full(len(self.agents), np.inf)
        phases = {}
        for i, ag in enumerate(self.agents):
            if i == 0 or self.tow[i] >= 0:
                continue
            stops = ag.route.stops
            front = self.s[i] + self.length[i] / 2
            while self.next_stop[i] < len(stops) and stops[self.next_stop[i]][0] < front - 0.5:
                self.next_stop[i] += 1  # passed: committed to this crossing
            if self.next_stop[i] >= len(stops):
                continue
            s_line, node, phase, crossing = stops[self.next_stop[i]]
            if node not in phases:
                phases[node] = self.town.phase_window(node, self.t)
            now, left = phases[node]
            dist = s_line - front
            v = self.v[i]
            walker = KINDS[ag.kind].walker if ag.kind in KINDS else False
            if now == phase:
                need = (dist + crossing + self.length[i]) / max(v, 1.0 if walker else 3.0)
                if need <= left + (3.0 if walker else 1.0):
                    continue
                if dist < v * v / (2 * COMFORT_DECEL) and not walker:
                    continue  # amber, too close to stop: go on (the all-red clears the box)
            out[i] = s_line - 0.3
        return out

    def advance(self, steps: int) -> None:
        for _ in range(steps):
            a_plan = np.zeros(len(self.agents))
            nxt = self.plan[min(self.k + 1, len(self.plan) - 1)]
            a_plan[0] = (nxt - self.v[0]) / DT
            step(
                self.pxy,
                self.pyaw,
                self.pcap,
                self.start,
                self.count,
                self.s,
                self.v,
                self.length,
                self.width,
                self.v0,
                self.amax,
                self.bdec,
                self.headway,
                self.gap0,
                self.tow,
                self.tow_off,
                self.stop_lines(),
                a_plan,
                self.is_ego,
                DT,
            )
            self.t += DT
            self.k += 1

    def poses(self) -> np.ndarray:
        """(N, 4): x, y, yaw, speed of every agent now."""
        out = np.empty((len(self.agents), 4))
        for i, ag in enumerate(self.agents):
            x, y, yaw = ag.route.path.pose(self.s[i])
            out[i] = float(x), float(y), float(yaw), self.v[i]
        return out

    def velocities(self) -> np.ndarray:
        """(N, 2): every agent's velocity now, m/s in the world frame.

        Its speed times d(x, y)/ds of its path at its arc length: the exact time derivative of
        the position :meth:`poses` reports (``Path.pose`` interpolates linearly between samples,
        so d(x, y)/ds is the current segment over STEP). An agent held at the end of its route
        (or towed by one) does not move, whatever its speed: 0.
        """
        end = STEP * (self.count - 1)
        f = np.clip(self.s, 0.0, end) / STEP
        a = self.start + np.minimum(f.astype(np.int64), self.count - 2)
        tangent = (self.pxy[a + 1] - self.pxy[a]) / STEP
        held = self.s >= end - self.length  # step() never moves a driven agent past this
        towed = self.tow >= 0
        held[towed] = held[self.tow[towed]]
        return np.where(held, 0.0, self.v)[:, None] * tangent
