"""Class vocabularies of every supported format, and the one mapping table onto Occ3D-nuScenes.

Each dataset has an IntEnum of its label ids and a :class:`Vocabulary` holding its free class,
ignore value and colours. Converting between vocabularies always goes through
:data:`TO_OCC3D` (PROTOCOLS §2.10); no other code hard-codes a class id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

IGNORE = 255  # the "no label" value every protocol discards (PROTOCOLS §3.1)


class Occ3D(IntEnum):
    OTHERS = 0
    BARRIER = 1
    BICYCLE = 2
    BUS = 3
    CAR = 4
    CONSTRUCTION_VEHICLE = 5
    MOTORCYCLE = 6
    PEDESTRIAN = 7
    TRAFFIC_CONE = 8
    TRAILER = 9
    TRUCK = 10
    DRIVEABLE_SURFACE = 11
    OTHER_FLAT = 12
    SIDEWALK = 13
    TERRAIN = 14
    MANMADE = 15
    VEGETATION = 16
    FREE = 17


class OpenOcc(IntEnum):
    """OpenOcc v2 (and v1, where 16 is called "empty"). The order differs from Occ3D."""

    CAR = 0
    TRUCK = 1
    TRAILER = 2
    BUS = 3
    CONSTRUCTION_VEHICLE = 4
    BICYCLE = 5
    MOTORCYCLE = 6
    PEDESTRIAN = 7
    TRAFFIC_CONE = 8
    BARRIER = 9
    DRIVEABLE_SURFACE = 10
    OTHER_FLAT = 11
    SIDEWALK = 12
    TERRAIN = 13
    MANMADE = 14
    VEGETATION = 15
    FREE = 16


class SurroundOcc(IntEnum):
    """SurroundOcc and OpenOccupancy: 0 is empty in the dense grid (file label 0 is noise)."""

    EMPTY = 0
    BARRIER = 1
    BICYCLE = 2
    BUS = 3
    CAR = 4
    CONSTRUCTION_VEHICLE = 5
    MOTORCYCLE = 6
    PEDESTRIAN = 7
    TRAFFIC_CONE = 8
    TRAILER = 9
    TRUCK = 10
    DRIVEABLE_SURFACE = 11
    OTHER_FLAT = 12
    SIDEWALK = 13
    TERRAIN = 14
    MANMADE = 15
    VEGETATION = 16


class Waymo(IntEnum):
    """Occ3D-Waymo after loading (free is 23 in the files, remapped to 15)."""

    GENERAL_OBJECT = 0
    VEHICLE = 1
    PEDESTRIAN = 2
    SIGN = 3
    CYCLIST = 4
    TRAFFIC_LIGHT = 5
    POLE = 6
    CONSTRUCTION_CONE = 7
    BICYCLE = 8
    MOTORCYCLE = 9
    BUILDING = 10
    VEGETATION = 11
    TREE_TRUNK = 12
    ROAD = 13
    WALKABLE = 14
    FREE = 15


WAYMO_FILE_FREE = 23

# The Occ3D colour palette (RGB), as used by the Occ3D / OccWorld visualisers.
OCC3D_COLOURS = np.array(
    [
        [0, 0, 0],  # others
        [255, 120, 50],  # barrier
        [255, 192, 203],  # bicycle
        [255, 255, 0],  # bus
        [0, 150, 245],  # car
        [0, 255, 255],  # construction_vehicle
        [200, 180, 0],  # motorcycle
        [255, 0, 0],  # pedestrian
        [255, 240, 150],  # traffic_cone
        [135, 60, 0],  # trailer
        [160, 32, 240],  # truck
        [255, 0, 255],  # driveable_surface
        [139, 137, 137],  # other_flat
        [75, 0, 75],  # sidewalk
        [150, 240, 80],  # terrain
        [230, 230, 250],  # manmade
        [0, 175, 0],  # vegetation
        [255, 255, 255],  # free
    ],
    dtype=np.uint8,
)

# The one mapping table onto Occ3D-nuScenes ids (PROTOCOLS §2.10). Ids absent from a row have no
# counterpart and map to IGNORE. ``exact=False`` rows are name-level correspondences that no
# official code defines (Waymo); converters warn when they use them.
_O = Occ3D
TO_OCC3D: dict[str, dict[int, int]] = {
    "occ3d": {int(c): int(c) for c in Occ3D},
    "openocc": {
        OpenOcc.CAR: _O.CAR, OpenOcc.TRUCK: _O.TRUCK, OpenOcc.TRAILER: _O.TRAILER, OpenOcc.BUS: _O.BUS,
        OpenOcc.CONSTRUCTION_VEHICLE: _O.CONSTRUCTION_VEHICLE, OpenOcc.BICYCLE: _O.BICYCLE,
        OpenOcc.MOTORCYCLE: _O.MOTORCYCLE, OpenOcc.PEDESTRIAN: _O.PEDESTRIAN,
        OpenOcc.TRAFFIC_CONE: _O.TRAFFIC_CONE, OpenOcc.BARRIER: _O.BARRIER,
        OpenOcc.DRIVEABLE_SURFACE: _O.DRIVEABLE_SURFACE, OpenOcc.OTHER_FLAT: _O.OTHER_FLAT,
        OpenOcc.SIDEWALK: _O.SIDEWALK, OpenOcc.TERRAIN: _O.TERRAIN, OpenOcc.MANMADE: _O.MANMADE,
        OpenOcc.VEGETATION: _O.VEGETATION, OpenOcc.FREE: _O.FREE,
    },
    "surroundocc": {**{i: i for i in range(1, 17)}, SurroundOcc.EMPTY: _O.FREE},
    "waymo": {
        Waymo.GENERAL_OBJECT: _O.OTHERS, Waymo.VEHICLE: _O.CAR, Waymo.PEDESTRIAN: _O.PEDESTRIAN,
        Waymo.SIGN: _O.MANMADE, Waymo.TRAFFIC_LIGHT: _O.MANMADE, Waymo.POLE: _O.MANMADE,
        Waymo.CONSTRUCTION_CONE: _O.TRAFFIC_CONE, Waymo.BICYCLE: _O.BICYCLE,
        Waymo.MOTORCYCLE: _O.MOTORCYCLE, Waymo.BUILDING: _O.MANMADE, Waymo.VEGETATION: _O.VEGETATION,
        Waymo.TREE_TRUNK: _O.VEGETATION, Waymo.ROAD: _O.DRIVEABLE_SURFACE, Waymo.WALKABLE: _O.SIDEWALK,
        Waymo.FREE: _O.FREE,
    },
}
TO_OCC3D = {k: {int(a): int(b) for a, b in v.items()} for k, v in TO_OCC3D.items()}
EXACT_MAPPING = {"occ3d": True, "openocc": True, "surroundocc": True, "waymo": False}


@dataclass(frozen=True)
class Vocabulary:
    """A dataset's label set: its enum, free class, ignore value and display colours."""

    name: str
    classes: type[IntEnum]
    free: int
    mapping: str  # key into TO_OCC3D
    ignore: int = IGNORE
    colours: np.ndarray = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.colours is None:
            lut = to_occ3d_lut(self.mapping)
            cols = np.array([OCC3D_COLOURS[lut[c]] if lut[c] != IGNORE else (128, 128, 128)
                             for c in range(self.num_classes)], dtype=np.uint8)
            object.__setattr__(self, "colours", cols)
        self.validate()

    def validate(self) -> None:
        ids = sorted(int(c) for c in self.classes)
        if ids != list(range(len(ids))):
            raise ValueError(f"vocabulary {self.name}: class ids must be 0..N-1, got {ids}")
        if self.free not in ids:
            raise ValueError(f"vocabulary {self.name}: free id {self.free} is not a class")
        if self.colours.shape != (len(ids), 3):
            raise ValueError(f"vocabulary {self.name}: colours must be ({len(ids)}, 3)")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def names(self) -> list[str]:
        return [c.name.lower() for c in sorted(self.classes, key=int)]

    @property
    def semantic_ids(self) -> list[int]:
        """Every class except free: the ones mIoU averages over."""
        return [int(c) for c in sorted(self.classes, key=int) if int(c) != self.free]


def to_occ3d_lut(mapping: str) -> np.ndarray:
    """A 256-entry uint8 lookup table from a vocabulary's ids to Occ3D ids (IGNORE if none)."""
    lut = np.full(256, IGNORE, dtype=np.uint8)
    for src, dst in TO_OCC3D[mapping].items():
        lut[src] = dst
    return lut


def from_occ3d_lut(mapping: str) -> np.ndarray:
    """The inverse table: Occ3D ids to this vocabulary (IGNORE where there is no counterpart).

    Where several source ids map onto one Occ3D id (Waymo's building, sign, pole ...), the
    lowest source id is chosen, so the inverse is deterministic.
    """
    lut = np.full(256, IGNORE, dtype=np.uint8)
    for src, dst in sorted(TO_OCC3D[mapping].items(), reverse=True):
        lut[dst] = src
    return lut


def convert_labels(labels: np.ndarray, src: Vocabulary, dst: Vocabulary) -> np.ndarray:
    """Relabel a uint8 grid from one vocabulary to another through Occ3D."""
    labels = np.asarray(labels)
    occ = to_occ3d_lut(src.mapping)[labels.astype(np.uint8)]
    if dst.mapping == "occ3d":
        return occ
    return from_occ3d_lut(dst.mapping)[occ]


OCC3D_VOCAB = Vocabulary("occ3d", Occ3D, int(Occ3D.FREE), "occ3d", colours=OCC3D_COLOURS)
OPENOCC_VOCAB = Vocabulary("openocc", OpenOcc, int(OpenOcc.FREE), "openocc")
SURROUNDOCC_VOCAB = Vocabulary("surroundocc", SurroundOcc, int(SurroundOcc.EMPTY), "surroundocc")
OPENOCCUPANCY_VOCAB = Vocabulary("openoccupancy", SurroundOcc, int(SurroundOcc.EMPTY), "surroundocc")
WAYMO_VOCAB = Vocabulary("waymo", Waymo, int(Waymo.FREE), "waymo")

VOCABS: dict[str, Vocabulary] = {
    v.name: v for v in (OCC3D_VOCAB, OPENOCC_VOCAB, SURROUNDOCC_VOCAB, OPENOCCUPANCY_VOCAB, WAYMO_VOCAB)
}

# The object ("thing") classes, others .. truck: what a uniform crop of a driving scene mostly
# misses (the tokenizers centre some training crops on them).
OCC3D_THINGS = tuple(c for c in Occ3D if c < Occ3D.DRIVEABLE_SURFACE)

# Dynamic classes of mIoU_D (PROTOCOLS §3.3): bicycle, bus, car, construction vehicle,
# motorcycle, pedestrian, trailer, truck.
OCC3D_DYNAMIC = (
    Occ3D.BICYCLE, Occ3D.BUS, Occ3D.CAR, Occ3D.CONSTRUCTION_VEHICLE,
    Occ3D.MOTORCYCLE, Occ3D.PEDESTRIAN, Occ3D.TRAILER, Occ3D.TRUCK,
)
