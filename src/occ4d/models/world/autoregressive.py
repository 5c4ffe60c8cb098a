"""OccWorld-style autoregressive forecasting over per-frame scene tokens with ego-pose tokens.

A frozen per-frame VQ (or FSQ) tokenizer turns each frame into ``h x w`` token ids. Each frame
becomes ``h * w`` scene tokens plus one ego-pose token that embeds the ego motion into the frame
and out of it (the step to the next frame: the action the next frame follows from). A
spatial-temporal transformer (OccWorld's design) alternates attention within a frame and causal
attention across frames at each spatial position, and the scene tokens of frame t predict the
token ids of frame t + 1 (cross-entropy, teacher forcing). At test time the future frames are
rolled out one at a time by greedy decoding, so a forecast is deterministic.

The ego motion comes from the trajectory that is passed in: the ground-truth future, or the
planner's prediction (``occ4d forecast --traj pred``), so every forecaster is conditioned alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from occ4d.models.world.embed import fourier_pose, rebase_traj
from occ4d.models.world.latents import LatentCodec


@dataclass(frozen=True)
class AutoregressiveConfig:
    token_size: tuple[int, int] = (25, 25)  # (h, w) tokens per frame
    vocab_size: int = 512
    past: int = 4
    future: int = 6
    hidden: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    pose_freqs: int = 6
    pose_scale: float = 16.0  # metres per step covered by the lowest frequency

    def __post_init__(self) -> None:
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be a multiple of heads ({self.heads})")
        if self.past < 1 or self.future < 1 or self.vocab_size < 2:
            raise ValueError("past, future must be positive and the vocabulary at least 2 tokens")

    @property
    def frames(self) -> int:
        return self.past + self.future


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, causal: bool) -> torch.Tensor:
        # x (N, L, D): N independent sequences of length L
        q, k, v = rearrange(self.qkv(self.norm(x)), "n l (three h e) -> three n h l e", three=3, h=self.heads)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return x + self.proj(rearrange(a, "n h l e -> n l (h e)"))


class STBlock(nn.Module):
    """Spatial attention within each frame, causal temporal attention per position, then an MLP."""

    def __init__(self, *, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.spatial = _Attention(dim, heads)
        self.temporal = _Attention(dim, heads)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, s, d = x.shape  # (B, T, S + 1, D)
        x = self.spatial(x.reshape(b * t, s, d), causal=False).reshape(b, t, s, d)
        x = rearrange(
            self.temporal(rearrange(x, "b t s d -> (b s) t d"), causal=True), "(b s) t d -> b t s d", b=b
        )
        return x + self.mlp(x)


class OccAutoregressive(nn.Module):
    """Token transformer; ``loss(occ, traj)`` trains, ``forecast(past_occ, traj)`` rolls out."""

    def __init__(self, config: AutoregressiveConfig, codec: LatentCodec):
        super().__init__()
        self.config = cfg = config
        self.codec = codec
        tk = codec.tokenizer.config
        if tk.backbone != "2d" or tk.bottleneck in ("kl", "rvq"):
            raise ValueError("the autoregressive model needs a per-frame ('2d') VQ or FSQ tokenizer "
                             "(one code per token)")
        if tk.vocab_size != cfg.vocab_size or tuple(codec.latent_shape(1)[1:]) != tuple(cfg.token_size):
            raise ValueError(
                f"tokenizer gives {tk.vocab_size} codes on {codec.latent_shape(1)[1:]}; "
                f"the model expects {cfg.vocab_size} on {cfg.token_size}"
            )
        h, w = cfg.token_size
        self.tok = nn.Embedding(cfg.vocab_size, cfg.hidden)
        self.pos_s = nn.Parameter(torch.randn(1, 1, h * w + 1, cfg.hidden) * 0.02)
        self.pos_t = nn.Parameter(torch.randn(1, cfg.frames, 1, cfg.hidden) * 0.02)
        pose_in = 2 * (4 * cfg.pose_freqs + 2) + 1
        self.pose = nn.Sequential(
            nn.Linear(pose_in, cfg.hidden), nn.SiLU(), nn.Linear(cfg.hidden, cfg.hidden)
        )
        self.blocks = nn.ModuleList(
            STBlock(dim=cfg.hidden, heads=cfg.heads, mlp_ratio=cfg.mlp_ratio) for _ in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(cfg.hidden)
        self.head = nn.Linear(cfg.hidden, cfg.vocab_size)

    def _pose_features(self, traj: torch.Tensor) -> torch.Tensor:
        """(B, T, 3) poses -> (B, T, E): motion into frame t and out of it (last frame: out unknown)."""
        b, t, _ = traj.shape
        steps = torch.stack(
            [rebase_traj(traj[:, i : i + 2], 0)[:, 1] for i in range(t - 1)], dim=1
        )  # (B, T-1, 3)
        zero = steps.new_zeros(b, 1, 3)
        into, out = torch.cat([zero, steps], 1), torch.cat([steps, zero], 1)
        known_out = torch.ones(b, t, 1, device=traj.device)
        known_out[:, -1] = 0.0
        f = lambda p: fourier_pose(p, self.config.pose_freqs, self.config.pose_scale)  # noqa: E731
        return torch.cat([f(into), f(out), known_out], dim=-1)

    def logits(self, ids: torch.Tensor, traj: torch.Tensor) -> torch.Tensor:
        """ids (B, T, h, w), traj (B, T', 3) with T' >= T -> next-frame logits (B, T, h, w, V).

        With T' > T the motion out of the last frame (towards the frame being predicted) is known.
        """
        b, t, h, w = ids.shape
        if traj.shape[1] < t:
            raise ValueError(f"need at least {t} trajectory rows, got {traj.shape[1]}")
        scene = self.tok(ids.reshape(b, t, h * w))  # (B, T, S, D)
        pose = self.pose(self._pose_features(traj.float()))[:, :t, None]  # (B, T, 1, D)
        x = torch.cat([pose, scene], dim=2) + self.pos_s + self.pos_t[:, :t]
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x[:, :, 1:])).reshape(b, t, h, w, -1)

    @torch.no_grad()
    def tokens(self, occ: torch.Tensor, keys=None) -> torch.Tensor:
        """(B, T, X, Y, Z) -> token ids (B, T, h, w) from the frozen tokenizer (cached by ``keys``)."""
        return self.codec.token_ids(occ, keys)

    def forward(
        self, occ: torch.Tensor, traj: torch.Tensor, generator: torch.Generator | None = None, keys=None
    ):
        """The training loss (so that a DDP wrapper sees it as the forward pass)."""
        return self.loss(occ, traj, generator, keys)

    def loss(
        self, occ: torch.Tensor, traj: torch.Tensor, generator: torch.Generator | None = None, keys=None
    ):
        """Teacher-forced next-frame token cross-entropy over every transition of the clip."""
        ids = self.tokens(occ, keys)
        logits = self.logits(ids[:, :-1], traj)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), ids[:, 1:].reshape(-1))
        acc = (logits.argmax(-1) == ids[:, 1:]).float().mean()
        return loss, {"ce": float(loss.detach()), "token_acc": float(acc)}

    @torch.no_grad()
    def forecast(self, past_occ: torch.Tensor, traj: torch.Tensor, **_) -> torch.Tensor:
        """past_occ (B, past, X, Y, Z), traj (B, past + future, 3) -> (B, future, X, Y, Z) uint8."""
        cfg = self.config
        ids = self.tokens(past_occ)
        for k in range(cfg.future):
            n = cfg.past + k
            nxt = self.logits(ids, traj[:, : n + 1])[:, n - 1].argmax(-1)  # frame n from frame n - 1
            ids = torch.cat([ids, nxt[:, None]], dim=1)
        logits = self.codec.tokenizer.decode_indices(ids[:, cfg.past :], cfg.future)
        return logits.argmax(-1).to(torch.uint8)
