"""The tokenizer's configuration: one frozen dataclass, validated on construction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class TokenizerConfig:
    """Architecture and loss of a scene tokenizer.

    The input grid ``(X, Y, Z)`` is embedded per voxel (``expansion`` channels per class) and the
    Z cells are folded into channels (OccWorld). ``backbone="2d"`` encodes every frame alone;
    ``"3d"`` convolves over (T, X, Y) (OccSora). Level i of the encoder halves X and Y when
    ``i < spatial_down`` and T when ``i < temporal_down``, so the compression ratio of
    PROTOCOLS §4 (T·X·Y over t·x·y, channels ignored) is about 4^spatial_down · 2^temporal_down
    times the patch volume of the stem (``patch``).

    ``fold_frames`` = N > 0 folds each N consecutive frames of a clip into channels beside the
    heights (the OccWorld trick applied to time as well): a 2D network encodes each group into one
    latent frame, so the ratio gains a factor N. With ``align_poses`` the clip is first resampled into
    its middle ego frame, where the static scene stands still over the N channel groups.
    """

    backbone: Literal["2d", "3d"] = "2d"
    bottleneck: Literal["vq", "rvq", "fsq", "kl"] = "vq"
    grid: tuple[int, int, int] = (200, 200, 16)
    num_classes: int = 18
    expansion: int = 8
    channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 4)
    spatial_down: int = 2
    temporal_down: int = 0
    patch: tuple[int, int, int] = (1, 1, 1)  # (t, x, y) patch embedding; 1s = full-res 3x3 conv
    fold_frames: int = 0  # 2d only: each N frames folded into channels, one latent frame per N
    num_res_blocks: int = 2
    attn_levels: tuple[int, ...] = ()
    mid_attention: bool = True
    dropout: float = 0.0
    latent_dim: int = 128
    # VQ (EMA codebook)
    codebook_size: int = 512
    beta: float = 0.25
    ema_decay: float = 0.99
    dead_threshold: float = 1.0
    rvq_depth: int = 4  # residual VQ: codes per token (each from its own codebook of codebook_size)
    # FSQ
    fsq_levels: tuple[int, ...] = (8, 5, 5, 5)
    # KL-VAE
    kl_weight: float = 1e-4
    kl_logvar_offset: float = 0.0  # added to the encoder's log-variance (quantizers.GaussianBottleneck)
    # the class embedding's initial rows: torch's N(0, 1) draw from the run seed ("normal"), or
    # one fixed set spread over the sphere of the same radius, the same for every seed ("spread")
    embed_init: Literal["normal", "spread"] = "normal"
    # loss
    class_balanced: bool = False
    # where the balanced weights' class frequencies come from: each batch ("batch"), or the whole
    # training split, counted at a fresh run's start and kept in the checkpoint ("split"), so a
    # crop centred on a bus does not lower the bus's weight
    balance_from: Literal["batch", "split"] = "batch"
    lovasz_weight: float = 0.0  # weight of the Lovász-softmax term beside cross-entropy (OccWorld, DOME)
    lovasz_voxels: int = 131_072  # Lovász on a uniform sample of this many voxels (its sort dominates)
    lovasz_skip: float = 0.0  # leave out of Lovász's sort the voxels right to within this (losses.py)
    quant_weight: float = 1.0
    # post-hoc logit adjustment: at evaluation the decoder's logits get ``- logit_adjust * log w_c``
    # with w_c the ENet weight of the training split's class frequency (counted at a fresh run's
    # start, kept in the checkpoint). Class-balanced CE trains the logits towards w_c * p(c); the
    # adjustment takes part of that tilt back, so rare classes are not painted over free space.
    logit_adjust: float = 0.0
    # 4D only: resample every frame into the clip's middle ego frame before encoding and warp the
    # decoded logits back (models/tokenizers/align.py), so the tokens need not carry ego motion
    align_poses: bool = False
    train_crop: int = 0  # train on random train_crop x train_crop windows (0: whole grid)
    crop_focus: float = 0.0  # share of crops centred on an object voxel (classes before the ground)
    # how a focused crop picks its object: "voxel" (uniform over object voxels, so mostly cars)
    # or "class" (first a class present in the clip, uniformly, then one of its voxels)
    crop_focus_by: Literal["voxel", "class"] = "voxel"

    @property
    def uses_split_frequencies(self) -> bool:
        """Whether the training split's class frequencies shape the model: the evaluation-time
        logit adjustment subtracts their log ENet weights, and ``balance_from="split"`` trains
        with those weights (the recipe's ``fit`` counts them at a fresh run's start)."""
        return bool(self.logit_adjust) or self.balance_from == "split"

    def __post_init__(self) -> None:
        levels = len(self.channel_mult)
        if self.backbone not in ("2d", "3d"):
            raise ValueError(f"backbone must be '2d' or '3d', got {self.backbone!r}")
        if self.bottleneck not in ("vq", "rvq", "fsq", "kl"):
            raise ValueError(f"bottleneck must be 'vq', 'rvq', 'fsq' or 'kl', got {self.bottleneck!r}")
        if not 0 <= self.spatial_down < levels or not 0 <= self.temporal_down < levels:
            raise ValueError(f"spatial_down ({self.spatial_down}) and temporal_down ({self.temporal_down}) "
                             f"must be below the number of levels ({levels})")
        if self.backbone == "2d" and (self.temporal_down or self.patch[0] != 1):
            raise ValueError("a 2d (per-frame) backbone cannot downsample time; use backbone='3d'")
        if len(self.patch) != 3 or min(self.patch) < 1:
            raise ValueError(f"patch must be three sizes >= 1 (t, x, y), got {self.patch}")
        if len(self.grid) != 3 or min(self.grid) <= 0:
            raise ValueError(f"grid must be three positive sizes (X, Y, Z), got {self.grid}")
        if min(self.channel_mult) <= 0 or self.channels <= 0 or self.latent_dim <= 0 or self.expansion <= 0:
            raise ValueError("channels, channel_mult, latent_dim and expansion must be positive")
        if any(not 0 <= a < levels for a in self.attn_levels):
            raise ValueError(f"attn_levels {self.attn_levels} must be levels 0..{levels - 1}")
        attention = bool(self.attn_levels) or self.mid_attention
        if self.train_crop and (attention or self.train_crop % self.spatial_stride):
            raise ValueError("train_crop needs a purely convolutional model (no attention) and a crop "
                             f"that is a multiple of the spatial stride {self.spatial_stride}")
        if not 0.0 <= self.lovasz_skip < 1.0:
            raise ValueError(f"lovasz_skip is an error level in [0, 1), got {self.lovasz_skip}")
        if not 0.0 <= self.logit_adjust <= 1.0:
            raise ValueError(f"logit_adjust is a share of the ENet log-weights in [0, 1], "
                             f"got {self.logit_adjust}")
        if self.embed_init not in ("normal", "spread"):
            raise ValueError(f"embed_init must be 'normal' or 'spread', got {self.embed_init!r}")
        if self.balance_from not in ("batch", "split"):
            raise ValueError(f"balance_from must be 'batch' or 'split', got {self.balance_from!r}")
        if self.balance_from == "split" and not self.class_balanced:
            raise ValueError("balance_from='split' needs class_balanced=True")
        if not 0.0 <= self.crop_focus <= 1.0:
            raise ValueError(f"crop_focus is a probability in [0, 1], got {self.crop_focus}")
        if self.crop_focus_by not in ("voxel", "class"):
            raise ValueError(f"crop_focus_by must be 'voxel' or 'class', got {self.crop_focus_by!r}")
        if self.fold_frames < 0 or (self.fold_frames and self.backbone != "2d"):
            raise ValueError(f"fold_frames ({self.fold_frames}) must be >= 0, "
                             "and > 0 only with backbone='2d'")
        if self.align_poses and self.backbone != "3d" and not self.fold_frames:
            raise ValueError("align_poses resamples a clip's frames into one frame: it needs backbone='3d' "
                             "or fold_frames > 0")
        if self.bottleneck == "rvq" and self.rvq_depth < 1:
            raise ValueError(f"rvq_depth must be >= 1, got {self.rvq_depth}")
        if self.bottleneck in ("vq", "rvq") and self.codebook_size < 2:
            raise ValueError("a VQ codebook needs at least 2 codes")
        if self.bottleneck == "fsq" and (not self.fsq_levels or min(self.fsq_levels) < 3):
            raise ValueError(f"FSQ levels must each be >= 3, got {self.fsq_levels}")

    @property
    def factors(self) -> tuple[tuple[int, ...], ...]:
        """Per-level downsample factors: (x, y) for 2d, (t, x, y) for 3d."""
        out = []
        for i in range(len(self.channel_mult) - 1):
            s = 2 if i < self.spatial_down else 1
            out.append((2 if i < self.temporal_down else 1, s, s) if self.backbone == "3d" else (s, s))
        return tuple(out)

    @property
    def frames_per_latent(self) -> int:
        """Occupancy frames per latent frame: 2^temporal_down x patch_t (3d), fold_frames, or 1."""
        if self.backbone == "3d":
            return 2 ** self.temporal_down * self.patch[0]
        return self.fold_frames or 1

    @property
    def spatial_stride(self) -> int:
        """Total downsampling of X (and Y): patch times 2^spatial_down."""
        return self.patch[1] * 2 ** self.spatial_down

    @property
    def stem(self) -> tuple[int, ...]:
        """The patch of the stem over the backbone's axes: (x, y) for 2d, (t, x, y) for 3d."""
        return tuple(self.patch[1:]) if self.backbone == "2d" else tuple(self.patch)

    @property
    def vocab_size(self) -> int:
        """Number of discrete tokens (0 for the continuous KL-VAE; per code of a residual VQ)."""
        if self.bottleneck in ("vq", "rvq"):
            return self.codebook_size
        if self.bottleneck == "fsq":
            n = 1
            for level in self.fsq_levels:
                n *= level
            return n
        return 0
