"""``occ4d synth``: write a procedural 4D driving world in the Occ3D-nuScenes layout."""

from __future__ import annotations


def synth(
    out: str,
    scenes: int = 10,
    frames: int = 40,
    seed: int = 0,
    workers: int = 1,
    val_fraction: float = 0.2,
    density: float = 1.0,
    real: str = "../shared/data",
    cameras: bool = False,
    camera_width: int = 352,
) -> None:
    """Synthesize scenes of 2 Hz keyframes with lidar and camera masks, Occ3D-nuScenes layout.

    Writes DIR/gts/<scene>/<token>/labels.npz, DIR/occ4d_infos_temporal_{train,val}.pkl and
    DIR/world.json, and the same keyframes with occupancy flow in the OpenOcc v2 layout:
    DIR/openocc_v2/<scene>/<token>/labels.npz (semantics in OpenOcc ids, flow (vx, vy) m/s of each
    road user in the ego frame, 0 elsewhere) listed by DIR/occ4d_infos_{train,val}_occ.pkl. The
    same seed gives the same bytes for any number of workers.

    Args:
        out: output folder (DIR).
        scenes: number of scenes (each its own town).
        frames: keyframes per scene (0.5 s apart; nuScenes scenes have about 40).
        seed: seed of the world.
        workers: parallel processes (one scene per task).
        val_fraction: share of scenes in the val split.
        density: traffic density multiplier (1 = default).
        real: folder of real Occ3D frames to print the class histogram beside (skipped if absent).
        cameras: also render the six surround cameras: DIR/samples/CAM_*/<token>.jpg plus depth and
            semantics in <token>.npz, with data_path and the image's intrinsics in the infos.
        camera_width: rendered image width in pixels (height keeps nuScenes' 16:9 aspect).
    """
    from pathlib import Path

    from occ4d.core.errors import DataError, check_counts
    from occ4d.synth.stats import format_histograms, real_histogram
    from occ4d.synth.world import generate

    check_counts(scenes=scenes, frames=frames, workers=workers)
    if cameras:
        check_counts(camera_width=camera_width)
    if not 0.0 <= val_fraction < 1.0:
        raise DataError("--val-fraction", f"must be in [0, 1), got {val_fraction}")
    if not density > 0:
        raise DataError("--density", f"must be positive, got {density}")
    summary = generate(out, scenes, frames, seed, workers=workers, val_fraction=val_fraction, density=density,
                       camera_width=camera_width if cameras else 0)
    print(
        f"wrote {summary['keyframes']} keyframes of {scenes} scenes to {summary['out']} "
        f"({summary['keyframes_per_second']:.1f} keyframes/s with {workers} worker(s))"
    )
    print(f"train: {len(summary['train'])} scenes, val: {len(summary['val'])} scenes")
    print("behaviours: " + ", ".join(f"{k}={v}" for k, v in summary["behaviours"].items()))
    print(
        f"mask_lidar covers {100 * summary['lidar_coverage']:.1f}% of voxels, "
        f"mask_camera {100 * summary['camera_coverage']:.1f}%"
    )
    real_counts = real_histogram(Path(real)) if Path(real).is_dir() else None
    print(format_histograms(summary["class_counts"], real_counts))
