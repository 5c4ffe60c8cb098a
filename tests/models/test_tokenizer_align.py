"""Pose-aligned 4D tokenizers: a static world aligns exactly, and what no frame covered is not learned."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from occ4d.core.grid import OCC3D
from occ4d.core.vocab import Occ3D
from occ4d.models.columns import resample
from occ4d.models.tokenizers import OccTokenizer, TokenizerConfig, tokenizer_loss
from occ4d.models.tokenizers.align import IGNORE, align_clip, reference_index, unalign_logits

FREE = int(Occ3D.FREE)


def pose(x: float, y: float, yaw: float) -> torch.Tensor:
    c, s = math.cos(yaw), math.sin(yaw)
    m = torch.eye(4, dtype=torch.float64)
    m[:2, :2] = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    m[0, 3], m[1, 3] = x, y
    return m


def static_clip(moves: list[tuple[float, float, float]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A static world seen from an ego at ``moves`` (x, y, yaw in the world = the reference
    frame's coordinates): (reference grid (X, Y, Z), clip (1, T, X, Y, Z), poses (1, T, 4, 4))."""
    g = torch.Generator().manual_seed(0)
    world = torch.full((200, 200, 4), FREE, dtype=torch.uint8)
    world[..., 0] = int(Occ3D.DRIVEABLE_SURFACE)
    for _ in range(40):  # boxes of random classes
        x, y = (int(v) for v in torch.randint(0, 190, (2,), generator=g))
        world[x:x + 6, y:y + 4, 1:3] = int(torch.randint(0, 10, (), generator=g))
    frames = [resample(world[None].long(), torch.tensor([m], dtype=torch.float64), FREE)[0] for m in moves]
    poses = torch.stack([pose(*m) for m in moves])[None]
    return world, torch.stack(frames)[None].to(torch.uint8), poses


SMALL = dict(backbone="3d", channels=8, channel_mult=(1, 2), spatial_down=1, temporal_down=1, patch=(1, 2, 2),
             num_res_blocks=1, mid_attention=False, latent_dim=8, codebook_size=16)
MOVES = [(-2.4, 0.0, 0.0), (-1.2, 0.4, 0.0), (0.0, 0.0, 0.0), (2.0, -0.8, math.pi / 2), (4.0, 0.0, math.pi)]


def test_a_static_world_aligns_to_its_reference_frame_exactly_where_frames_cover_it():
    world, clip, poses = static_clip(MOVES)
    assert reference_index(len(MOVES)) == 2  # the middle frame, which sits at the world origin here
    aligned = align_clip(clip, poses)[0]  # (T, X, Y, Z)
    for t in range(len(MOVES)):
        covered = aligned[t] != IGNORE
        assert covered[..., 0].float().mean() > 0.5  # most of the reference grid is seen
        assert torch.equal(aligned[t][covered], world[covered])
        assert bool((aligned[t][~covered] == IGNORE).all())
    assert torch.equal(aligned[2], world)  # the reference frame itself covers everything


def test_unaligning_the_reference_grid_gives_back_each_frame():
    world, clip, poses = static_clip(MOVES)
    onehot = torch.nn.functional.one_hot(world.long(), 18).float()  # (X, Y, Z, C)
    logits = onehot[None, None].expand(1, len(MOVES), *onehot.shape).clone()
    back = unalign_logits(logits, poses, FREE).argmax(-1)[0]  # (T, X, Y, Z)
    assert torch.equal(back.to(torch.uint8), clip[0])  # the frames were cut from this grid


def test_aligned_tokenizer_needs_poses_and_a_4d_backbone():
    with pytest.raises(ValueError, match="backbone='3d'"):
        TokenizerConfig(backbone="2d", align_poses=True)
    cfg = TokenizerConfig(**SMALL, align_poses=True, grid=(200, 200, 4))
    model = OccTokenizer(cfg)
    _, clip, poses = static_clip(MOVES[:4])
    with pytest.raises(ValueError, match="poses"):
        model.reconstruct(clip)
    with pytest.raises(ValueError, match="poses"):
        tokenizer_loss(model, clip, cfg)
    assert model.reconstruct(clip, poses).shape == clip.shape


def test_what_the_reference_frame_cannot_see_does_not_enter_the_loss():
    cfg = TokenizerConfig(**SMALL, align_poses=True, grid=(200, 200, 4), class_balanced=True,
                          lovasz_weight=1.0, lovasz_voxels=0)
    torch.manual_seed(0)
    model = OccTokenizer(cfg).eval()
    _, clip, poses = static_clip(MOVES[:4])
    base, _ = tokenizer_loss(model, clip, cfg, poses)
    # of 4 frames the reference is frame 1, 1.2 m ahead of frame 0: frame 0's rearmost three
    # columns (x < -38.8 m in its own frame) lie outside the reference grid, so no label there
    # may change the loss
    assert reference_index(4) == 1
    hidden = clip.clone()
    hidden[0, 0, :3] = int(Occ3D.CAR)
    changed, _ = tokenizer_loss(model, hidden, cfg, poses)
    assert torch.equal(base, changed)
    seen = clip.clone()
    seen[0, 0, 100:106] = int(Occ3D.CAR)  # columns the reference does see
    assert not torch.equal(base, tokenizer_loss(model, seen, cfg, poses)[0])


def test_an_aligned_tokenizer_cannot_serve_the_world_models_yet():
    from occ4d.models.world.latents import LatentCodec

    cfg = replace(TokenizerConfig(**SMALL, grid=OCC3D.shape), align_poses=True)
    with pytest.raises(ValueError, match="align_poses"):
        LatentCodec(OccTokenizer(cfg))
