"""``occ4d perceive --ckpt RUN --info FILE --out DIR``: occupancy from one keyframe's six cameras.

Reads a real (or synthetic) keyframe from an mmdet3d v1.1 info file (``data_list``: cam2img,
cam2ego or lidar2cam, lidar2ego, ego2global) through the restricted unpickler, predicts the
200 x 200 x 16 Occ3D grid with a perception run and writes:

- ``DIR/<token>.npz``: the prediction (key ``arr_0``, the CVPR 2023 submission format);
- with a flow head, ``DIR/openocc_v2/keyframe/<token>/labels.npz``: the same grid in OpenOcc v2
  ids with its ``flow`` (m/s), the layout ``occ4d eval flow --pred DIR`` reads;
- ``DIR/<token>.png``: the six input images in the nuScenes layout, with the keyframe's LiDAR
  points projected into them by the same calibration (coloured by depth), beside a top-down
  render of the prediction (occ4d.vis).
"""

from __future__ import annotations


def perceive(ckpt: str, info: str, out: str, index: int = 0, device: str = "cpu", ema: bool = True) -> None:
    """Predict occupancy from the six camera images of keyframe INDEX of an mmdet3d info file.

    Args:
        ckpt: a perception run folder (latest checkpoint) or checkpoint file.
        info: mmdet3d v1.1 info .pkl; images and the LiDAR sweep are looked up beside it.
        out: output folder.
        index: which keyframe of the info file.
        device: cpu or cuda.
        ema: use the run's EMA weights when it kept them.
    """
    from pathlib import Path

    import numpy as np

    from occ4d.core.errors import DataError
    from occ4d.io.atomic import save_npz
    from occ4d.io.images import load_mmdet3d_keyframe
    from occ4d.models.perception.perceived import predict_keyframe, predict_keyframe_flow
    from occ4d.train.registry import load_model
    from occ4d.vis.layout import hstack, titled, vstack
    from occ4d.vis.topdown import save_png, topdown_rgb, upscale

    model, cfg, _ = load_model(ckpt, ema=ema, device=device, kind="perception")
    try:
        kf = load_mmdet3d_keyframe(info, index)
        images = kf.load_images()
        points = kf.lidar_in_ego()
    except DataError as e:
        raise SystemExit(f"error: {e}") from e
    out_dir = Path(out)
    flow_note = ""
    if cfg.model.flow_head:
        pred, flow = predict_keyframe_flow(model, images, kf.rig, device)
        flow_path = write_openocc_prediction(out_dir, kf.token, pred, flow)
        speed = np.linalg.norm(flow[..., 0, :], axis=-1)[(pred != cfg.model.free_class).any(-1)]
        flow_note = (f"; flow in {flow_path} (median {np.median(speed) if speed.size else 0.0:.2f} m/s "
                     "over occupied columns)")
    else:
        pred = predict_keyframe(model, images, kf.rig, device)
    save_npz(out_dir / f"{kf.token}.npz", True, pred)

    views = [titled(lidar_overlay(images[n], cam, points, width=400), cam.name)
             for n, cam in enumerate(kf.rig.cameras)]
    order = {c.name: i for i, c in enumerate(kf.rig.cameras)}
    rows = [hstack([views[order[n]] for n in names if n in order])
            for names in (("CAM_FRONT_LEFT", "CAM_FRONT", "CAM_FRONT_RIGHT"),
                          ("CAM_BACK_LEFT", "CAM_BACK", "CAM_BACK_RIGHT"))]
    cams = vstack(rows)
    top = titled(upscale(topdown_rgb(pred, shade=True), 2), f"prediction ({cfg.preset}), x forward = up")
    pad = np.zeros((max(cams.shape[0] - top.shape[0], 0), top.shape[1], 3), np.uint8)
    save_png(out_dir / f"{kf.token}.png", hstack([cams, np.concatenate([top, pad])]))
    occupied = int((pred != cfg.model.free_class).sum())
    print(f"wrote {out_dir / kf.token}.npz and .png: {pred.shape} grid, {occupied} occupied voxels"
          + flow_note)


def write_openocc_prediction(out_dir, token: str, labels, flow):
    """``OUT/openocc_v2/keyframe/<token>/labels.npz``: Occ3D ``labels`` relabelled to OpenOcc v2
    ids through the one mapping table (Occ3D "others" becomes free, as ``occ4d synth`` writes it)
    with ``flow``; returns the path."""
    from pathlib import Path

    import numpy as np

    from occ4d.core.frame import Frame
    from occ4d.io.convert import convert_frame
    from occ4d.io.openocc import save_openocc

    path = Path(out_dir) / "openocc_v2" / "keyframe" / token / "labels.npz"
    openocc, _ = convert_frame(Frame(semantics=labels, flow=np.asarray(flow, np.float32)), "openocc")
    save_openocc(path, openocc)
    return path


def lidar_overlay(image, cam, points_ego, width: int = 400):
    """The image resized to ``width`` with ego-frame points drawn where ``cam`` projects them
    (near red to far blue, 0-50 m)."""
    import numpy as np
    from PIL import Image

    uv, depth, inside = cam.project(points_ego)
    h, w = image.shape[:2]
    s = width / w
    small = np.asarray(Image.fromarray(image).resize((width, int(round(h * s))), Image.BILINEAR)).copy()
    px = np.floor(uv[inside] * s).astype(int)
    t = np.clip(depth[inside] / 50.0, 0, 1)
    colour = np.stack([255 * (1 - t), 80 * np.ones_like(t), 255 * t], axis=1).astype(np.uint8)
    ok = (px[:, 0] < small.shape[1]) & (px[:, 1] < small.shape[0])
    small[px[ok, 1], px[ok, 0]] = colour[ok]
    return small
