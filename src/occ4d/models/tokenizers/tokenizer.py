"""Scene tokenizers: occupancy clips (B, T, X, Y, Z) <-> latent grids, and their training loss.

One module covers the three designs of issue 4, chosen by :class:`TokenizerConfig`:
- OccWorld's per-frame VQ-VAE: ``backbone="2d", bottleneck="vq"``, 200x200 -> 50x50 tokens;
- OccSora's 4D VQ-VAE: ``backbone="3d"``, e.g. 32x200x200 -> 4x25x25 tokens;
- DOME's continuous VAE: ``bottleneck="kl"``.
Every voxel's class is embedded in ``expansion`` channels and the Z cells are folded into the
channel axis; the decoder emits ``Z * expansion`` channels that are scored against the same class
embedding (a dot product per voxel), which gives per-voxel class logits (OccWorld's decoder).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from occ4d.core.grid import OCC3D, GridSpec
from occ4d.core.vocab import OCC3D_THINGS, OCC3D_VOCAB
from occ4d.models.losses import lovasz_softmax
from occ4d.models.quantizers import (
    Bottleneck,
    FiniteScalarQuantizer,
    GaussianBottleneck,
    ResidualVectorQuantizer,
    VectorQuantizerEMA,
)
from occ4d.models.tokenizers.align import IGNORE, align_clip, unalign_logits
from occ4d.models.tokenizers.backbone import ConvDecoder, ConvEncoder, level_sizes
from occ4d.models.tokenizers.config import TokenizerConfig


@dataclass
class TokenizerOutput:
    logits: torch.Tensor  # (B, T, X, Y, Z, C)
    bottleneck: Bottleneck


class OccTokenizer(nn.Module):
    """Encode occupancy to latents and decode latents to per-voxel class logits."""

    def __init__(self, config: TokenizerConfig):
        super().__init__()
        self.config = cfg = config
        dims = 2 if cfg.backbone == "2d" else 3
        x, y, z = cfg.grid
        self.class_embed = nn.Embedding(cfg.num_classes, cfg.expansion)
        if cfg.embed_init == "spread":
            rows = spread_rows(cfg.num_classes, cfg.expansion)
            with torch.no_grad():
                self.class_embed.weight.copy_(rows)
        if cfg.bottleneck == "vq":
            self.quantizer = VectorQuantizerEMA(dim=cfg.latent_dim, codebook_size=cfg.codebook_size,
                                                beta=cfg.beta, decay=cfg.ema_decay,
                                                dead_threshold=cfg.dead_threshold)
        elif cfg.bottleneck == "rvq":
            self.quantizer = ResidualVectorQuantizer(dim=cfg.latent_dim, codebook_size=cfg.codebook_size,
                                                     depth=cfg.rvq_depth, beta=cfg.beta, decay=cfg.ema_decay,
                                                     dead_threshold=cfg.dead_threshold)
        elif cfg.bottleneck == "fsq":
            self.quantizer = FiniteScalarQuantizer(dim=cfg.latent_dim, levels=cfg.fsq_levels)
        else:
            self.quantizer = GaussianBottleneck(dim=cfg.latent_dim, kl_weight=cfg.kl_weight,
                                                logvar_offset=cfg.kl_logvar_offset)
        common = dict(dims=dims, channels=cfg.channels, channel_mult=cfg.channel_mult,
                      num_res_blocks=cfg.num_res_blocks, attn_levels=cfg.attn_levels,
                      mid_attention=cfg.mid_attention, dropout=cfg.dropout, patch=cfg.stem)
        folded = z * cfg.expansion * (cfg.fold_frames or 1)  # heights (and folded frames) as channels
        self.encoder = ConvEncoder(in_channels=folded, factors=cfg.factors,
                                   z_channels=self.quantizer.in_channels, **common)
        self.decoder = ConvDecoder(out_channels=folded, z_channels=cfg.latent_dim, **common)
        if cfg.uses_split_frequencies:  # log ENet weights of the training split (set_class_frequencies)
            self.register_buffer("class_log_weight", torch.zeros(cfg.num_classes))

    def set_class_frequencies(self, freq: torch.Tensor) -> None:
        """Store the training split's class frequencies (C,) as log ENet weights: the ones the
        evaluation-time logit adjustment subtracts (``config.logit_adjust``) and the class-balanced
        loss uses with ``config.balance_from == "split"``."""
        if not self.config.uses_split_frequencies:
            raise ValueError("this tokenizer uses no split class frequencies (logit_adjust = 0, "
                             "balance_from = 'batch')")
        freq = torch.as_tensor(freq, dtype=torch.float64).reshape(-1)
        if freq.numel() != self.config.num_classes or not torch.isfinite(freq).all() or (freq < 0).any():
            raise ValueError(f"expected {self.config.num_classes} finite non-negative class frequencies")
        freq = freq / freq.sum().clamp_min(1e-12)
        self.class_log_weight.copy_(enet_log_weights(freq).to(self.class_log_weight))

    # -- shapes ---------------------------------------------------------------------------------
    def _size(self, frames: int, xy: tuple[int, int] | None = None) -> tuple[int, ...]:
        x, y = xy or self.config.grid[:2]
        return (x, y) if self.config.backbone == "2d" else (frames, x, y)

    def _level_sizes(self, frames: int, xy: tuple[int, int] | None = None) -> list[tuple[int, ...]]:
        size = self._size(frames, xy)
        patched = tuple(-(-n // p) for n, p in zip(size, self.config.stem, strict=True))
        return level_sizes(patched, self.config.factors)

    def latent_shape(self, frames: int) -> tuple[int, int, int]:
        """(t, x, y) of the latent of a ``frames``-long clip (t = frames for per-frame models)."""
        s = self._level_sizes(frames)[-1]
        if self.config.fold_frames:
            return (-(-frames // self.config.fold_frames), *s)  # type: ignore[return-value]
        return (frames, *s) if self.config.backbone == "2d" else tuple(s)  # type: ignore[return-value]

    def compression_ratio(self, frames: int) -> float:
        """T·X·Y / (t·x·y): PROTOCOLS §4's convention (height and channel width ignored)."""
        x, y, _ = self.config.grid
        t, h, w = self.latent_shape(frames)
        return frames * x * y / (t * h * w)

    # -- encode / decode ------------------------------------------------------------------------
    @property
    def grid(self) -> GridSpec:
        return config_grid(self.config)

    def encode(self, occ: torch.Tensor, poses: torch.Tensor | None = None) -> Bottleneck:
        """occ (B, T, X, Y, Z) integer class ids -> bottleneck with latent (B, C, t, x, y).

        X and Y may differ from ``config.grid`` (the network is convolutional: training on
        crops uses this); Z must match, since the height is folded into channels. With
        ``config.align_poses`` the clip is first resampled into its middle frame with ``poses``
        (B, T, 4, 4) ego-to-global; without poses it is taken as already aligned (IGNORE
        columns read as free).
        """
        b, t = occ.shape[:2]
        if occ.ndim != 5 or occ.shape[-1] != self.config.grid[2]:
            raise ValueError(f"expected (B, T, X, Y, {self.config.grid[2]}) class ids, "
                             f"got {tuple(occ.shape)}")
        if self.config.align_poses:
            if poses is not None:
                occ = align_clip(occ, poses, self.grid)
            occ = torch.where(occ == IGNORE, torch.full_like(occ, OCC3D_VOCAB.free), occ)
        h = self.class_embed(occ.long())  # (B, T, X, Y, Z, E)
        if self.config.fold_frames:  # each group of N consecutive frames -> one latent frame
            n = self.config.fold_frames
            if t % n:  # a short last group repeats its last frame (decode drops the copies)
                h = torch.cat([h, h[:, -1:].expand(b, (-t) % n, *h.shape[2:])], dim=1)
            q = self.quantizer(self.encoder(rearrange(h, "b (g n) x y z e -> (b g) (n z e) x y", n=n)))
            q.latent = rearrange(q.latent, "(b g) c x y -> b c g x y", b=b)  # (B, C, T / N, x, y)
            if q.indices is not None:
                q.indices = rearrange(q.indices, "(b g) x y ... -> b g x y ...", b=b)
            return q
        if self.config.backbone == "2d":
            h = rearrange(h, "b t x y z e -> (b t) (z e) x y")
        else:
            h = rearrange(h, "b t x y z e -> b (z e) t x y")
        q = self.quantizer(self.encoder(h))
        if self.config.backbone == "2d":  # restore the time axis: (B, C, t, x, y)
            q.latent = rearrange(q.latent, "(b t) c x y -> b c t x y", b=b, t=t)
            if q.indices is not None:
                q.indices = rearrange(q.indices, "(b t) x y ... -> b t x y ...", b=b, t=t)
        return q

    def decode(self, latent: torch.Tensor, frames: int | None = None,
               xy: tuple[int, int] | None = None, poses: torch.Tensor | None = None) -> torch.Tensor:
        """latent (B, C, t, x, y) -> logits (B, T, X, Y, Z, C_cls).

        ``frames`` is the clip length to reconstruct (default: t for per-frame models, and
        t · 2^temporal_down · patch_t for 4D ones); ``xy`` the grid size (default config.grid).
        With ``config.align_poses`` and ``poses`` the logits are warped back from the middle
        frame to each frame's own (columns it did not cover decode to free); without poses they
        stay in the middle frame.
        """
        b, _, t = latent.shape[:3]
        cfg = self.config
        frames = frames or t * cfg.frames_per_latent
        sizes, full = self._level_sizes(frames, xy), self._size(frames, xy)
        if cfg.fold_frames:
            n = cfg.fold_frames
            if -(-frames // n) != t:
                raise ValueError(f"this tokenizer decodes each latent frame into {n} frames: "
                                 f"{t} latent frame(s) make {(t - 1) * n + 1}-{t * n}, not {frames}")
            h = self.decoder(rearrange(latent, "b c g x y -> (b g) c x y"), sizes, full)
            h = rearrange(h, "(b g) (n z e) x y -> b (g n) x y z e", b=b, n=n, e=cfg.expansion)[:, :frames]
        elif cfg.backbone == "2d":
            h = self.decoder(rearrange(latent, "b c t x y -> (b t) c x y"), sizes, full)
            h = rearrange(h, "(b t) (z e) x y -> b t x y z e", b=b, e=cfg.expansion)
        else:
            h = self.decoder(latent, sizes, full)
            h = rearrange(h, "b (z e) t x y -> b t x y z e", e=self.config.expansion)
        logits = h @ self.class_embed.weight.t()  # (B, T, X, Y, Z, classes)
        if cfg.logit_adjust and not self.training:  # training sees the raw logits the loss shaped
            logits = logits - cfg.logit_adjust * self.class_log_weight.to(logits.dtype)
        if cfg.align_poses and poses is not None:
            logits = unalign_logits(logits, poses, OCC3D_VOCAB.free, self.grid)
        return logits

    def decode_indices(self, indices: torch.Tensor, frames: int | None = None) -> torch.Tensor:
        """Token ids (B, t, x, y) -> logits (B, T, X, Y, Z, C_cls) (VQ and FSQ only)."""
        if not hasattr(self.quantizer, "lookup"):
            raise ValueError("a continuous (KL) tokenizer has no token ids")
        return self.decode(self.quantizer.lookup(indices), frames)

    def forward(self, occ: torch.Tensor, poses: torch.Tensor | None = None) -> TokenizerOutput:
        q = self.encode(occ, poses)
        return TokenizerOutput(self.decode(q.latent, occ.shape[1], tuple(occ.shape[2:4]), poses), q)

    @torch.no_grad()
    def reconstruct(self, occ: torch.Tensor, poses: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, X, Y, Z) -> argmax reconstruction, uint8 (``poses`` for aligned tokenizers)."""
        if self.config.align_poses and poses is None:
            raise ValueError("this tokenizer aligns each clip to its middle frame: pass the clip's poses")
        return self(occ, poses).logits.argmax(-1).to(torch.uint8)


def network_flops(cfg: TokenizerConfig, frames: int) -> float:
    """Forward FLOPs of the encoder and decoder over one full ``frames``-long clip.

    Counted with torch's FLOP counter on the meta device (shapes only, no memory or arithmetic);
    the bottleneck and the per-voxel class logits are left to the caller.
    """
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = OccTokenizer(cfg)
    x, y, z = cfg.grid
    if cfg.backbone == "2d":  # one 2D pass per latent frame, folded frames as channels
        size = (-(-frames // cfg.frames_per_latent), (cfg.fold_frames or 1) * z * cfg.expansion, x, y)
    else:
        size = (1, z * cfg.expansion, frames, x, y)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        h = model.encoder(torch.zeros(size, device="meta"))
        latent = torch.zeros((h.shape[0], cfg.latent_dim, *h.shape[2:]), device="meta")
        model.decoder(latent, model._level_sizes(frames), model._size(frames))
    return float(counter.get_total_flops())


def config_grid(cfg: TokenizerConfig) -> GridSpec:
    """The geometry of ``cfg.grid``: Occ3D's, or a smaller grid with Occ3D's voxels (tests)."""
    shape = tuple(cfg.grid)
    if shape == OCC3D.shape:
        return OCC3D
    return GridSpec("tokenizer", shape, OCC3D.voxel_size, OCC3D.range_min)


def spread_rows(n: int, dim: int, steps: int = 500) -> torch.Tensor:
    """(n, dim) rows of norm sqrt(dim) (a N(0, 1) row's typical norm) spread over the sphere:
    a fixed draw pushed apart by descending the sum of exp(4 cos) over the pairs. Deterministic
    (its own generator), so every run seed starts from the same class geometry."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, dim, generator=g, dtype=torch.float64).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=0.05)
    off = ~torch.eye(n, dtype=torch.bool)
    with torch.enable_grad():  # models may be built under no_grad
        for _ in range(steps):
            u = F.normalize(x, dim=1)
            energy = torch.exp(4.0 * (u @ u.t())[off]).sum()
            opt.zero_grad()
            energy.backward()
            opt.step()
    return (F.normalize(x.detach(), dim=1) * dim ** 0.5).float()


def enet_log_weights(freq: torch.Tensor) -> torch.Tensor:
    """log of ENet's class weight 1 / ln(1.02 + f_c) for class frequencies ``freq`` (sum 1)."""
    return -torch.log(torch.log(1.02 + freq))


def balanced_class_weights(target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """ENet-style weights 1 / ln(1.02 + f_c) from the class frequencies f_c of this batch.

    Rare classes (pedestrians, cones) get up to ~50x the weight of free space; classes absent
    from the batch get the maximum weight, which does not matter since they add no terms.
    """
    target = target.reshape(-1)
    freq = torch.bincount(target[target < num_classes], minlength=num_classes).float()
    freq = freq / freq.sum().clamp_min(1)
    w = enet_log_weights(freq).exp()
    return w / w.mean()


def random_crop(occ: torch.Tensor, size: int, multiple: int, focus: float = 0.0,
                classes: torch.Tensor | None = None, by_class: bool = False) -> torch.Tensor:
    """A random ``size`` x ``size`` window of (B, T, X, Y, Z), its corner on a ``multiple`` grid.

    Aligning the corner to the total downsampling keeps crops on the token lattice. With
    ``focus`` > 0 each clip gets its own window, and with probability ``focus`` that window is
    centred (up to the lattice) on a random voxel of ``classes`` (the objects, which a uniform
    window of a driving scene mostly misses). With ``by_class`` the centre is drawn in two steps,
    a class of ``classes`` present in the clip and then one of its voxels, so a traffic cone is
    as likely a centre as a car. Uses torch's generator, which the training loop
    reseeds from (seed, rank, step).
    """
    x, y = occ.shape[2:4]
    if size <= 0 or size >= min(x, y):
        return occ
    if focus <= 0:
        cx = int(torch.randint(0, (x - size) // multiple + 1, ())) * multiple
        cy = int(torch.randint(0, (y - size) // multiple + 1, ())) * multiple
        return occ[:, :, cx:cx + size, cy:cy + size]
    crops = []
    for clip in occ:  # (T, X, Y, Z)
        cx = int(torch.randint(0, (x - size) // multiple + 1, ())) * multiple
        cy = int(torch.randint(0, (y - size) // multiple + 1, ())) * multiple
        if classes is not None and float(torch.rand(())) < focus:
            pool = classes.to(clip.device)
            if by_class:
                present = pool[torch.isin(pool, clip.unique())]
                if len(present):
                    pool = present[int(torch.randint(0, len(present), ()))].reshape(1)
            hits = torch.isin(clip, pool).any(-1).any(0).nonzero()  # (N, 2) columns
            if len(hits):
                px, py = hits[int(torch.randint(0, len(hits), ()))].tolist()
                cx = min(max(px - size // 2, 0), x - size) // multiple * multiple
                cy = min(max(py - size // 2, 0), y - size) // multiple * multiple
        crops.append(clip[:, cx:cx + size, cy:cy + size])
    return torch.stack(crops)


def tokenizer_loss(model: nn.Module, occ: torch.Tensor, cfg: TokenizerConfig,
                   poses: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy reconstruction (optionally class-balanced) plus the bottleneck's term.

    ``model`` may be wrapped (DDP), so the settings come from ``cfg``. With ``cfg.train_crop``
    the loss is computed on a random crop (fully convolutional designs only). An aligned
    tokenizer (``cfg.align_poses``) needs the clip's ``poses``: the clip is resampled into its
    middle frame, cropped there, and scored there, with the columns no frame covered left out.
    """
    if cfg.align_poses:
        if poses is None:
            raise ValueError("this tokenizer aligns each clip to its middle frame: the loss needs the poses")
        occ = align_clip(occ, poses, config_grid(cfg))
    if cfg.train_crop:
        objects = torch.tensor([int(c) for c in OCC3D_THINGS])
        occ = random_crop(occ, cfg.train_crop, cfg.spatial_stride, cfg.crop_focus, objects,
                          by_class=cfg.crop_focus_by == "class")
    out = model(occ)  # an aligned clip goes in as it is (IGNORE columns read as free)
    target = occ.long().reshape(-1)
    weight = None
    if cfg.class_balanced and cfg.balance_from == "split":
        net = model.module if hasattr(model, "module") else model
        if not net.class_log_weight.any():  # ENet log-weights are never all zero
            raise ValueError("balance_from='split' needs the training split's class frequencies "
                             "(set_class_frequencies; the training loop's fit hook sets them)")
        weight = net.class_log_weight.float().exp()
        weight = weight / weight.mean()
    elif cfg.class_balanced:
        weight = balanced_class_weights(target, cfg.num_classes)
    logits = out.logits.reshape(-1, cfg.num_classes).float()
    ce = F.cross_entropy(logits, target, weight=weight, ignore_index=IGNORE)
    loss = ce + cfg.quant_weight * out.bottleneck.loss
    stats = {"ce": float(ce.detach()), "quant": float(out.bottleneck.loss.detach()), **out.bottleneck.stats}
    if cfg.lovasz_weight:
        # IoU is a ratio of counts, which a uniform voxel sample estimates (closely at 131k
        # voxels) at a fraction of the cost of sorting every voxel.
        pick = slice(None)
        if 0 < cfg.lovasz_voxels < target.numel():
            pick = torch.randint(0, target.numel(), (cfg.lovasz_voxels,), device=target.device)
        lov = lovasz_softmax(logits[pick].softmax(-1), target[pick], ignore=IGNORE,
                             skip_below=cfg.lovasz_skip)
        loss = loss + cfg.lovasz_weight * lov
        stats["lovasz"] = float(lov.detach())
    return loss, stats
