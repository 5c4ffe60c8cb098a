"""Camera samples: resize + crop keep image content and intrinsics consistent; seeded augmentation;
items of the synthetic world; missing images are a DataError naming the info."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _camworld import camera_world

from occ4d.core.errors import DataError
from occ4d.data.camera_dataset import (
    CameraDataset,
    ViewTransform,
    apply_transform,
    draw_transform,
    prepare_views,
    transform_camera,
)
from occ4d.data.index import load_frame, load_index
from occ4d.synth.rig import camera_rig


@pytest.mark.parametrize("t", [ViewTransform(0.2, 10, 30), ViewTransform(0.25, 60, 20),
                               ViewTransform(0.16, 0, 16)])
def test_transform_keeps_projection_and_content_together(t):
    """A bright spot where an ego point projects stays where the transformed camera projects it."""
    cam = camera_rig()["CAM_FRONT_LEFT"]
    point = np.array([[12.0, 9.0, 0.5]])
    uv, _, inside = cam.project(point)
    assert inside[0]
    img = np.zeros((cam.height, cam.width, 3), np.uint8)
    u, v = np.floor(uv[0]).astype(int)
    img[v - 12:v + 12, u - 12:u + 12] = 255
    out_wh = (256, 128)
    out = apply_transform(img, t, out_wh)
    new = transform_camera(cam, t, out_wh)
    uv2, _, inside2 = new.project(point)
    assert inside2[0]
    ys, xs = np.nonzero(out[..., 0] > 128)
    assert abs(xs.mean() - uv2[0, 0]) < 1.5 and abs(ys.mean() - uv2[0, 1]) < 1.5


def test_eval_transform_keeps_the_bottom_and_centres():
    t = draw_transform((1600, 900), (256, 128))
    assert t.scale == pytest.approx(0.16)
    assert (t.crop_x, t.crop_y) == (0, 144 - 128)


def test_augmentation_is_seeded():
    a = [draw_transform((352, 198), (256, 128), (0.9, 1.1), 0.5, np.random.default_rng(s)) for s in (1, 1, 2)]
    assert a[0] == a[1] and a[0] != a[2]


def test_prepare_views_scales_intrinsics_for_the_image_size():
    rig = camera_rig()
    small = np.zeros((6, 90, 160, 3), np.uint8)  # the rig is calibrated at 1600 x 900
    views = prepare_views(small, rig, (64, 32))
    assert views["images"].shape == (6, 3, 32, 64)
    k = views["intrinsics"][0]
    assert k[0, 0] == pytest.approx(rig.cameras[0].intrinsic[0, 0] * 64 / 1600, rel=1e-5)


def test_items_of_the_synthetic_world():
    root = camera_world()
    records = load_index(root, "train")
    ds = CameraDataset(records, root, (64, 32), history=1, train=True, seed=5, resize_range=(0.9, 1.1),
                       crop_jitter=0.5)
    assert len(ds) == len(records)
    item = ds[1]
    assert item["images"].shape == (2, 6, 3, 32, 64)
    assert item["intrinsics"].shape == (2, 6, 3, 3) and item["sensor2ego"].shape == (2, 6, 4, 4)
    assert item["semantics"].shape == (200, 200, 16) and item["mask_camera"].dtype == torch.bool
    assert item["depth"].shape == (6, 32, 64) and (item["depth"] > 0).float().mean() > 0.3
    assert torch.allclose(item["past2current"][-1], torch.eye(4), atol=1e-6)
    assert not torch.allclose(item["past2current"][0], torch.eye(4), atol=1e-3)  # the ego moved
    again = CameraDataset(records, root, (64, 32), history=1, train=True, seed=5, resize_range=(0.9, 1.1),
                          crop_jitter=0.5)[1]
    assert torch.equal(item["images"], again["images"])
    first = ds[0]  # a scene's first frame repeats itself as its history
    assert torch.equal(first["images"][0], first["images"][1])


def test_items_carry_image_semantics_and_the_openocc_flow():
    """The rendered per-pixel classes go through the same crop as the image (255 where the crop
    leaves the image or sees sky), and the flow is the keyframe's OpenOcc v2 twin's."""
    from occ4d.data.index import openocc_twins

    root = camera_world()
    records = load_index(root, "train")
    ds = CameraDataset(records, root, (64, 32), with_flow=True)
    item = ds[3]
    sem = item["image_semantics"]
    assert sem.shape == (6, 32, 64) and sem.dtype == torch.uint8
    known = sem[sem != 255]
    assert known.numel() > 0.3 * sem.numel() and int(known.max()) < 18
    # the road under the cameras is drivable surface (Occ3D 11) at the bottom rows
    assert (sem[:, -1] == 11).float().mean() > 0.5
    twin = openocc_twins([ds.frames[3][-1]])[0]
    want = load_frame(twin).flow
    assert torch.equal(item["flow"], torch.from_numpy(want.astype(np.float32)))
    assert "flow" not in CameraDataset(records, root, (64, 32))[3]
    # a crop jittered past the image edge has no target there
    shifted = CameraDataset(records, root, (64, 32), train=True, seed=1, resize_range=(0.8, 0.8))[3]
    assert (shifted["image_semantics"][:, :, -1] == 255).all()


def test_missing_data_path_is_a_data_error():
    root = camera_world()
    records = load_index(root, "train")
    cams = records[0].extras["cams"]
    saved = cams["CAM_BACK"]["data_path"]
    cams["CAM_BACK"]["data_path"] = ""
    try:
        with pytest.raises(DataError, match="occ4d synth --cameras"):
            CameraDataset(records, root, (64, 32))[0]
    finally:
        cams["CAM_BACK"]["data_path"] = saved
