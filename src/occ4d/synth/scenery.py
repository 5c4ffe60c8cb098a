"""The static world map: the town's ground, kerbs, buildings, vegetation, street furniture, road
works and parked vehicles as a 0.2 m column grid in the world frame, built once per scene.

Columns are classified by their distance to the nearest road centreline (one Euclidean distance
transform): carriageway, sidewalk (with a kerb: a rim one layer up along the road), and the
blocks behind. Each block
is a built block (buildings with front yards and garden walls), a park, a paved plaza or a
parking lot. Buildings are hollow shells as in Occ3D, where lidar never sees inside a building.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from occ4d.core.vocab import OCC3D_VOCAB, Occ3D
from occ4d.synth.shapes import NZ, ROAD_TOP, boxes, draw_size, layer_range
from occ4d.synth.town import MEDIAN_HALF, PARKING_WIDTH, Town, centrelines
from occ4d.synth.voxelize import fill_boxes

RES = 0.2  # m per world column
FREE = OCC3D_VOCAB.free


@dataclass
class WorldMap:
    """``grid`` (X, Y, 16) uint8 Occ3D classes; column (a, b) spans ``origin + RES * (a, b)``."""

    grid: np.ndarray
    origin: tuple[float, float]


class _Painter:
    def __init__(self, grid: np.ndarray, origin: tuple[float, float]):
        self.g, self.o = grid, origin

    def index(self, x: float, y: float) -> tuple[int, int]:
        return int(np.floor((x - self.o[0]) / RES)), int(np.floor((y - self.o[1]) / RES))

    def window(self, x0, y0, x1, y1):
        (a0, b0), (a1, b1) = self.index(x0, y0), self.index(x1, y1)
        a0, b0 = max(a0, 0), max(b0, 0)
        a1, b1 = min(a1 + 1, self.g.shape[0]), min(b1 + 1, self.g.shape[1])
        return a0, b0, a1, b1

    def box(self, x0, y0, x1, y1, z0, z1, cls, only_free: bool = False) -> None:
        a0, b0, a1, b1 = self.window(x0, y0, x1, y1)
        k0, k1 = layer_range(z0, z1)
        if a1 <= a0 or b1 <= b0 or k1 <= k0:
            return
        view = self.g[a0:a1, b0:b1, k0:k1]
        if only_free:
            view[view == FREE] = cls
        else:
            view[...] = cls

    def ellipsoid(self, x, y, z, rxy, rz, cls) -> None:
        a0, b0, a1, b1 = self.window(x - rxy, y - rxy, x + rxy, y + rxy)
        k0, k1 = layer_range(z - rz, z + rz)
        if a1 <= a0 or b1 <= b0 or k1 <= k0:
            return
        cx = self.o[0] + (np.arange(a0, a1) + 0.5) * RES - x
        cy = self.o[1] + (np.arange(b0, b1) + 0.5) * RES - y
        cz = -0.8 + 0.4 * np.arange(k0, k1) - z
        inside = (cx[:, None, None] / rxy) ** 2 + (cy[None, :, None] / rxy) ** 2 + (
            cz[None, None] / rz
        ) ** 2 <= 1
        view = self.g[a0:a1, b0:b1, k0:k1]
        view[inside & (view == FREE)] = cls

    def objects(self, bxs: np.ndarray) -> None:
        fill_boxes(self.g, self.o[0], self.o[1], RES, bxs, False)


def build_world(town: Town, bounds: tuple[float, float, float, float], rng: np.random.Generator) -> WorldMap:
    """Rasterise everything static inside ``bounds`` = (x0, y0, x1, y1) metres."""
    x0, y0, x1, y1 = bounds
    shape = (int(np.ceil((x1 - x0) / RES)), int(np.ceil((y1 - y0) / RES)))
    grid = np.full((*shape, NZ), FREE, dtype=np.uint8)
    p = _Painter(grid, (x0, y0))

    # Distance to the nearest centreline, and which road it belongs to.
    label = np.full(shape, -1, np.int32)
    for ei, pts in centrelines(town):
        a = np.floor((pts[:, 0] - x0) / RES).astype(int)
        b = np.floor((pts[:, 1] - y0) / RES).astype(int)
        ok = (a >= 0) & (a < shape[0]) & (b >= 0) & (b < shape[1])
        label[a[ok], b[ok]] = ei
    if (label < 0).all():
        raise ValueError("the map bounds contain no road")
    dist, (ia, ib) = ndimage.distance_transform_edt(label < 0, return_indices=True)
    dist = dist * RES
    edge = label[ia, ib]
    hw = np.array([e.half_width for e in town.edges])[edge]
    sw = np.array([e.sidewalk for e in town.edges])[edge]
    road = dist <= hw
    side = (dist > hw) & (dist <= hw + sw)
    inner = dist > hw + sw

    grid[road, 0] = Occ3D.DRIVEABLE_SURFACE
    grid[side, 0] = Occ3D.SIDEWALK
    grid[side & (dist <= hw + 0.4), 1] = Occ3D.SIDEWALK  # the kerb: a raised rim along the road
    _medians(town, p, edge, dist, road)

    blocks, n_blocks = ndimage.label(inner)
    kinds = rng.choice(["built", "park", "plaza", "lot"], size=n_blocks + 1, p=[0.66, 0.14, 0.12, 0.08])
    ground = {
        "built": Occ3D.TERRAIN,
        "park": Occ3D.TERRAIN,
        "plaza": Occ3D.OTHER_FLAT,
        "lot": Occ3D.DRIVEABLE_SURFACE,
    }
    lut = np.array([Occ3D.TERRAIN] + [ground[k] for k in kinds[1:]], np.uint8)
    grid[inner, 0] = lut[blocks[inner]]

    xs = x0 + (np.arange(shape[0]) + 0.5) * RES
    ys = y0 + (np.arange(shape[1]) + 0.5) * RES
    slices = ndimage.find_objects(blocks)
    for bi, sl in enumerate(slices, start=1):
        if sl is None:
            continue
        mask = blocks[sl] == bi
        area = mask.sum() * RES * RES
        kind = kinds[bi]
        depth = dist[sl] - (hw + sw)[sl]
        if kind == "built":
            # Occ3D labels only what accumulated lidar hit; behind a row of buildings nothing is.
            back = mask & (depth > 18.0)
            p.g[sl][back, 0] = FREE
            _buildings(p, sl, mask & (depth > rng.uniform(2.0, 5.0)), area, rng)
            if rng.random() < 0.5:
                _walls(p, sl, mask & (depth <= 0.45), xs, ys, rng)
            _scatter(
                p, sl, mask & (grid[sl][..., 1] == FREE) & (depth > 0.6), xs, ys, rng, area / 900, "tree"
            )
            _scatter(
                p, sl, mask & (grid[sl][..., 1] == FREE) & (depth > 0.6), xs, ys, rng, area / 500, "bush"
            )
        elif kind == "park":
            _scatter(p, sl, mask & (depth > 1.0), xs, ys, rng, area / 120, "tree")
            _scatter(p, sl, mask & (depth > 0.6), xs, ys, rng, area / 150, "bush")
            _scatter(p, sl, mask & (depth > 0.6), xs, ys, rng, area / 800, "bench")
        elif kind == "plaza":
            _scatter(p, sl, mask & (depth > 1.0), xs, ys, rng, area / 400, "tree")
            _scatter(p, sl, mask & (depth > 0.6), xs, ys, rng, area / 300, "bin")
            _scatter(p, sl, mask & (depth > 0.6), xs, ys, rng, area / 600, "pole")
        else:
            _parking_lot(p, sl, mask & (depth > 1.0), xs, ys, rng)

    _street_furniture(town, p, bounds, rng)
    _kerbside(town, p, bounds, rng)
    return WorldMap(grid, (x0, y0))


def _medians(town: Town, p: _Painter, edge: np.ndarray, dist: np.ndarray, road: np.ndarray) -> None:
    """Raised other_flat strips between the directions of 2-lane roads, stopping before junctions."""
    has = np.array([e.median for e in town.edges])
    cand = road & has[edge] & (dist <= MEDIAN_HALF)
    a, b = np.nonzero(cand)
    if not len(a):
        return
    x = p.o[0] + (a + 0.5) * RES
    y = p.o[1] + (b + 0.5) * RES
    keep = np.ones(len(a), bool)
    for i in np.unique(edge[a, b]):
        e = town.edges[i]
        sel = edge[a, b] == i
        along = (x if e.axis == 0 else y)[sel]
        ca, cb = town.nodes[e.a][e.axis], town.nodes[e.b][e.axis]
        ok = (np.abs(along - ca) > town.trim[(e.a, i)] + 1.0) & (
            np.abs(along - cb) > town.trim[(e.b, i)] + 1.0
        )
        ok &= (along - ca) * (along - cb) < 0  # between its own nodes
        keep[np.nonzero(sel)[0][~ok]] = False
    p.g[a[keep], b[keep], 0:2] = Occ3D.OTHER_FLAT


def _buildings(p: _Painter, sl, avail: np.ndarray, area: float, rng: np.random.Generator) -> None:
    """Shell buildings (rectangles and L shapes, 3.5-25 m tall) packed into a block."""
    avail = avail.copy()
    cand = np.argwhere(avail)
    if not len(cand):
        return
    for _ in range(int(area / 120) + 5):
        a, b = cand[rng.integers(len(cand))]
        w, d = rng.uniform(8, 26, size=2) / RES
        a0, b0 = int(a - w / 2), int(b - d / 2)
        a1, b1 = int(a + w / 2), int(b + d / 2)
        if a0 < 0 or b0 < 0 or a1 > avail.shape[0] or b1 > avail.shape[1]:
            continue
        foot = np.zeros((a1 - a0, b1 - b0), bool)
        foot[...] = True
        if rng.random() < 0.35:  # an L: cut one corner away
            ca, cb = (
                int(foot.shape[0] * rng.uniform(0.35, 0.65)),
                int(foot.shape[1] * rng.uniform(0.35, 0.65)),
            )
            corner = rng.integers(4)
            sa = slice(0, ca) if corner % 2 else slice(ca, None)
            sb = slice(0, cb) if corner // 2 else slice(cb, None)
            foot[sa, sb] = False
        if not avail[a0:a1, b0:b1][foot].all():
            continue
        height = float(rng.uniform(3.5, 25.0))
        shell = foot & ~ndimage.binary_erosion(foot, iterations=2, border_value=0)
        ga, gb = sl[0].start + a0, sl[1].start + b0
        col = p.g[ga : ga + foot.shape[0], gb : gb + foot.shape[1]]
        k0, k1 = layer_range(-0.9, ROAD_TOP + height)
        col[foot] = FREE  # the inside is never observed: free, as in Occ3D
        col[shell, k0:k1] = Occ3D.MANMADE
        if ROAD_TOP + height < 5.4:
            col[foot, k1 - 1] = Occ3D.MANMADE  # the roof is inside the grid
        gap = int(rng.uniform(1.0, 4.0) / RES)
        avail[max(a0 - gap, 0) : a1 + gap, max(b0 - gap, 0) : b1 + gap] = False


def _walls(p: _Painter, sl, band: np.ndarray, xs, ys, rng) -> None:
    """Garden walls along the front of a block, in segments of a few metres."""
    cell = 6.0
    on = rng.random((64, 64)) < 0.55
    ia, ib = np.nonzero(band)
    ci = (np.floor(xs[sl[0].start + ia] / cell).astype(int)) % 64
    cj = (np.floor(ys[sl[1].start + ib] / cell).astype(int)) % 64
    keep = on[ci, cj]
    k0, k1 = layer_range(-0.6, ROAD_TOP + rng.uniform(1.2, 2.4))
    p.g[sl[0].start + ia[keep], sl[1].start + ib[keep], k0:k1] = Occ3D.MANMADE


def _scatter(p: _Painter, sl, mask: np.ndarray, xs, ys, rng, count: float, what: str) -> None:
    cand = np.argwhere(mask)
    n = rng.poisson(max(count, 0.0))
    if not len(cand) or n == 0:
        return
    for a, b in cand[rng.integers(len(cand), size=n)]:
        _object(p, what, xs[sl[0].start + a], ys[sl[1].start + b], ROAD_TOP, rng)


def _object(p: _Painter, what: str, x: float, y: float, z0: float, rng) -> None:
    if what == "tree":
        trunk = float(rng.uniform(1.8, 3.0))
        p.box(x - 0.2, y - 0.2, x + 0.2, y + 0.2, z0, z0 + trunk, Occ3D.VEGETATION)
        r, rz = float(rng.uniform(1.4, 3.0)), float(rng.uniform(1.0, 2.0))
        p.ellipsoid(x, y, z0 + trunk + rz * 0.8, r, rz, Occ3D.VEGETATION)
    elif what == "bush":
        r = float(rng.uniform(0.5, 1.3))
        p.ellipsoid(x, y, z0 + 0.2, r, float(rng.uniform(0.5, 1.1)), Occ3D.VEGETATION)
    elif what == "pole":
        p.box(x - 0.2, y - 0.2, x + 0.2, y + 0.2, z0, 5.4, Occ3D.MANMADE)
    elif what == "bin":
        p.box(x - 0.3, y - 0.3, x + 0.3, y + 0.3, z0, z0 + 1.0, Occ3D.OTHERS)
    elif what == "bench":
        horizontal = rng.random() < 0.5
        hx, hy = (0.9, 0.3) if horizontal else (0.3, 0.9)
        p.box(x - hx, y - hy, x + hx, y + hy, z0, z0 + 0.8, Occ3D.OTHERS)


def _parking_lot(p: _Painter, sl, mask: np.ndarray, xs, ys, rng) -> None:
    """Rows of parked cars (and the odd van or truck) in a lot."""
    if not mask.any():
        return
    a, b = np.nonzero(mask)
    xa, xb = xs[sl[0].start + a.min()], xs[sl[0].start + a.max()]
    ya, yb = ys[sl[1].start + b.min()], ys[sl[1].start + b.max()]
    bx = []
    for y in np.arange(ya + 4.0, yb - 4.0, 14.0):  # a row of bays, then an aisle
        for x in np.arange(xa + 2.0, xb - 2.0, 2.8):
            ia, ib = int((x - xs[0]) / RES), int((y - ys[0]) / RES)
            if not (0 <= ia - sl[0].start < mask.shape[0] and 0 <= ib - sl[1].start < mask.shape[1]):
                continue
            if not mask[ia - sl[0].start, ib - sl[1].start] or rng.random() < 0.55:
                continue
            kind = "car" if rng.random() < 0.92 else "truck"
            size = draw_size(kind, rng)
            if kind == "truck":
                continue  # trucks do not fit a car bay
            bx.append(boxes(kind, x, y, np.pi / 2 * (1 if rng.random() < 0.5 else -1), size))
    if bx:
        p.objects(np.concatenate(bx))


def _edge_frame(town: Town, ei: int):
    e = town.edges[ei]
    pa, pb = town.nodes[e.a], town.nodes[e.b]
    h = (pb - pa) / np.linalg.norm(pb - pa)
    return e, pa, pb, h, np.array([h[1], -h[0]])


def _street_furniture(town: Town, p: _Painter, bounds, rng) -> None:
    """Street lights at the kerb, street trees and bins along the sidewalks, signal poles at junctions."""
    for ei in range(len(town.edges)):
        e, pa, pb, h, right = _edge_frame(town, ei)
        length = float(np.linalg.norm(pb - pa))
        ta, tb = town.trim[(e.a, ei)] + 2.0, town.trim[(e.b, ei)] + 2.0
        for side in (1.0, -1.0):
            n = side * right
            kerb = e.half_width + 0.4
            outer = e.half_width + e.sidewalk - 0.8
            for s in np.arange(ta + rng.uniform(0, 10), length - tb, rng.uniform(22, 32)):
                q = pa + h * s + n * kerb
                _object(p, "pole", q[0], q[1], ROAD_TOP, rng)
            if rng.random() < 0.6:
                for s in np.arange(ta + rng.uniform(0, 6), length - tb, rng.uniform(8, 14)):
                    q = pa + h * s + n * outer
                    _object(p, "tree", q[0], q[1], ROAD_TOP, rng)
            for s in np.arange(ta + rng.uniform(0, 20), length - tb, rng.uniform(25, 45)):
                q = pa + h * s + n * outer
                _object(p, "bin", q[0], q[1], ROAD_TOP, rng)
    for n, kind in enumerate(town.kind):
        if kind not in ("cross", "tee"):
            continue
        ex = [town.edges[i] for i in town.edges_at(n) if town.edges[i].axis == 1]
        ey = [town.edges[i] for i in town.edges_at(n) if town.edges[i].axis == 0]
        dx = max(e.half_width for e in ex) + 0.6
        dy = max(e.half_width for e in ey) + 0.6
        for sx in (-1, 1):
            for sy in (-1, 1):
                q = town.nodes[n] + (sx * dx, sy * dy)
                _object(p, "pole", q[0], q[1], ROAD_TOP, rng)


def _kerbside(town: Town, p: _Painter, bounds, rng) -> None:
    """Parking strips: parked vehicles, bicycle racks and road works (barriers, cones, a digger)."""
    bx = []
    for ei in range(len(town.edges)):
        e, pa, pb, h, right = _edge_frame(town, ei)
        length = float(np.linalg.norm(pb - pa))
        ta, tb = town.trim[(e.a, ei)] + 3.0, town.trim[(e.b, ei)] + 3.0
        for side in (1.0, -1.0):
            n = side * right
            yaw = float(np.arctan2(h[1], h[0])) + (0.0 if side > 0 else np.pi)
            rack = pa + h * rng.uniform(ta, max(ta, length - tb)) + n * (e.half_width + e.sidewalk - 0.9)
            if rng.random() < 0.35:
                for k in range(int(rng.integers(2, 6))):
                    q = rack + h * 0.8 * k
                    size = draw_size("bicycle", rng)
                    bx.append(
                        boxes("bicycle", q[0], q[1], yaw + np.pi / 2, (size[0], size[1], 1.1), ROAD_TOP)
                    )
            if not e.parking:
                continue
            mid = e.half_width - PARKING_WIDTH / 2
            works = (ta + 5, ta + 5 + rng.uniform(15, 30)) if rng.random() < 0.35 else (-1.0, -1.0)
            if works[1] > 0 and works[1] < length - tb:
                _road_works(p, pa, h, n, e.half_width, works, yaw, rng, bx)
            s = ta + rng.uniform(0, 5)
            while s < length - tb:
                r = rng.random()
                kind = (
                    "car"
                    if r < 0.78
                    else "truck"
                    if r < 0.84
                    else "motorcycle"
                    if r < 0.9
                    else "trailer"
                    if r < 0.94
                    else "bus"
                    if r < 0.97
                    else "construction_vehicle"
                )
                size = draw_size(kind, rng)
                if s + size[0] > length - tb:
                    break
                if not (works[0] - 2 < s + size[0] and s < works[1] + 2) and rng.random() < 0.65:
                    q = pa + h * (s + size[0] / 2) + n * mid
                    bx.append(boxes(kind, q[0], q[1], yaw, size))
                s += size[0] + rng.uniform(0.8, 6.0)
    if bx:
        p.objects(np.concatenate(bx))


def _road_works(p: _Painter, pa, h, n, half_width, works, yaw, rng, bx) -> None:
    s0, s1 = works
    inner = half_width - PARKING_WIDTH + 0.2
    for s in np.arange(s0, s1, 2.0):  # barrier line on the lane side of the strip
        q = pa + h * s + n * inner
        p.box(q[0] - 0.2, q[1] - 0.2, q[0] + 0.2, q[1] + 0.2, ROAD_TOP, ROAD_TOP + 1.0, Occ3D.BARRIER)
        q2 = pa + h * (s + 1.0) + n * inner
        p.box(q2[0] - 0.2, q2[1] - 0.2, q2[0] + 0.2, q2[1] + 0.2, ROAD_TOP, ROAD_TOP + 1.0, Occ3D.BARRIER)
    for k in range(4):  # a taper of cones at each end
        for s, sign in ((s0 - 2.0 * (k + 1), 1), (s1 + 2.0 * (k + 1), 1)):
            q = pa + h * s + n * (inner + sign * 0.5 * k)
            p.box(
                q[0] - 0.2, q[1] - 0.2, q[0] + 0.2, q[1] + 0.2, ROAD_TOP, ROAD_TOP + 0.8, Occ3D.TRAFFIC_CONE
            )
    q = pa + h * (0.5 * (s0 + s1)) + n * (half_width - PARKING_WIDTH / 2)
    size = draw_size("construction_vehicle", rng)
    bx.append(boxes("construction_vehicle", q[0], q[1], yaw, (min(size[0], s1 - s0 - 2), 2.2, size[2])))
