"""Latent bottlenecks of the tokenizers: EMA vector quantisation, FSQ and a diagonal Gaussian (KL).

Every bottleneck maps a channel-first latent ``(B, C, *S)`` to ``(B, C, *S)`` and returns a
:class:`Bottleneck` record with its loss term, the token indices (``(B, *S)`` int64, or None for
the continuous one) and codebook statistics (usage, perplexity) for the training log.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.nn.functional as F
from einops import rearrange
from torch import nn


@dataclass
class Bottleneck:
    latent: torch.Tensor  # (B, C, *S) what the decoder receives
    loss: torch.Tensor  # scalar: commitment / KL term, already weighted
    indices: torch.Tensor | None  # (B, *S) int64 token ids, or None for continuous latents
    stats: dict[str, float] = field(default_factory=dict)


def code_stats(indices: torch.Tensor, codebook_size: int) -> dict[str, float]:
    """Share of the codebook used in this batch, and the perplexity exp(H) of code frequencies."""
    # Local to this process: a collective here could deadlock when processes run different
    # numbers of evaluation batches.
    counts = torch.bincount(indices.reshape(-1), minlength=codebook_size).double()
    p = counts / counts.sum().clamp_min(1)
    entropy = -(p * torch.log(p.clamp_min(1e-12))).sum()
    return {"usage": float((counts > 0).double().mean()), "perplexity": float(entropy.exp())}


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class VectorQuantizerEMA(nn.Module):
    """VQ with an EMA-updated codebook (VQ-VAE-2 / SoundStream) and dead-code restart.

    The codebook is not trained by gradients: each step moves code k towards the mean of the
    vectors assigned to it with rate ``1 - decay``; the encoder gets the commitment loss
    ``beta * ||z - sg(e)||^2`` and straight-through gradients. Codes whose EMA count falls below
    ``dead_threshold`` are restarted on random encoder outputs of the batch, which keeps the
    codebook in use. Statistics are summed over processes, and restarts are broadcast from rank
    0, so every process holds the same codebook. The first batch initialises the codebook.
    Random draws use torch's generator, which the training loop reseeds from (seed, rank, step).
    """

    def __init__(self, *, dim: int, codebook_size: int = 512, beta: float = 0.25, decay: float = 0.99,
                 dead_threshold: float = 1.0, eps: float = 1e-5):
        super().__init__()
        self.dim, self.codebook_size, self.beta, self.decay = dim, codebook_size, beta, decay
        self.dead_threshold, self.eps = dead_threshold, eps
        self.register_buffer("embed", torch.randn(codebook_size, dim) * 0.02)
        self.register_buffer("cluster_size", torch.zeros(codebook_size))
        self.register_buffer("embed_sum", torch.zeros(codebook_size, dim))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    @property
    def in_channels(self) -> int:
        return self.dim

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Token ids (B, *S) -> latents (B, C, *S)."""
        return torch.movedim(self.embed[indices], -1, 1)

    def _sample(self, flat: torch.Tensor, n: int) -> torch.Tensor:
        """n rows of ``flat`` drawn at random (with replacement), identical on every process."""
        rows = flat[torch.randint(0, flat.shape[0], (n,), device=flat.device)]
        if _distributed():
            dist.broadcast(rows, src=0)
        return rows

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, indices: torch.Tensor) -> None:
        if not bool(self.initialised):
            self.embed.copy_(self._sample(flat, self.codebook_size))
            self.embed_sum.copy_(self.embed)
            self.cluster_size.fill_(1.0)
            self.initialised.fill_(True)
        counts = torch.bincount(indices, minlength=self.codebook_size).to(flat.dtype)
        sums = torch.zeros_like(self.embed_sum).index_add_(0, indices, flat)
        if _distributed():
            dist.all_reduce(counts)
            dist.all_reduce(sums)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        # Laplace smoothing keeps rarely used codes from dividing by ~0.
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (total + self.codebook_size * self.eps) * total
        self.embed.copy_(self.embed_sum / smoothed[:, None])
        dead = self.cluster_size < self.dead_threshold
        n_dead = int(dead.sum())
        if n_dead:
            fresh = self._sample(flat, n_dead)
            self.embed[dead] = fresh
            self.embed_sum[dead] = fresh * self.dead_threshold
            self.cluster_size[dead] = self.dead_threshold

    def forward(self, z: torch.Tensor) -> Bottleneck:
        shape = z.shape  # (B, C, *S)
        z = z.float()
        flat = rearrange(z, "b c ... -> (b ...) c")  # (N, C)
        # distances in float32 even under bf16 autocast: near-ties decide the code
        with torch.autocast(device_type=z.device.type, enabled=False):
            dist_sq = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.embed.t()
                       + self.embed.pow(2).sum(1)[None])  # (N, K)
        indices = dist_sq.argmin(1)  # (N,)
        if self.training:
            self._update(flat.detach(), indices)
        quant = self.embed[indices]  # (N, C)
        loss = self.beta * F.mse_loss(flat, quant.detach())
        quant = flat + (quant - flat).detach()  # straight-through estimator
        latent = torch.movedim(quant.reshape(shape[0], *shape[2:], shape[1]), -1, 1)
        ids = indices.reshape(shape[0], *shape[2:])
        return Bottleneck(latent, loss, ids, code_stats(ids, self.codebook_size))


class ResidualVectorQuantizer(nn.Module):
    """Residual VQ (SoundStream; I²-World quantises its scene tokens this way): ``depth`` EMA
    codebooks in sequence, each quantising what the ones before left over.

    A token is ``depth`` codes, so ``depth`` x log2(K) bits at the same token grid: the
    compression ratio of PROTOCOLS §4 (positions, not bits) is unchanged, the information per
    token grows. Stage i sees the residual ``r_i = z - sum_{j<i} e_j`` (codes detached); the
    decoder gets ``z + sg(sum_i e_i - z)`` (straight-through) and the encoder the commitment loss
    ``beta * ||z - sg(sum_i e_i)||^2``. Indices are ``(B, *S, depth)``.
    """

    def __init__(self, *, dim: int, codebook_size: int = 512, depth: int = 4, beta: float = 0.25,
                 decay: float = 0.99, dead_threshold: float = 1.0):
        super().__init__()
        if depth < 1:
            raise ValueError(f"a residual VQ needs depth >= 1, got {depth}")
        self.dim, self.codebook_size, self.beta = dim, codebook_size, beta
        # each stage's own commitment term is unused (beta 0): the total one is taken once
        self.stages = nn.ModuleList(
            VectorQuantizerEMA(dim=dim, codebook_size=codebook_size, beta=0.0, decay=decay,
                               dead_threshold=dead_threshold) for _ in range(depth))

    @property
    def in_channels(self) -> int:
        return self.dim

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Token ids (B, *S, depth) -> latents (B, C, *S): the sum of every stage's code."""
        codes = sum(stage.embed[indices[..., i]] for i, stage in enumerate(self.stages))
        return torch.movedim(codes, -1, 1)

    def forward(self, z: torch.Tensor) -> Bottleneck:
        z = z.float()
        residual, total, ids, stats = z.detach(), torch.zeros_like(z), [], {}
        for i, stage in enumerate(self.stages):
            q = stage(residual)  # stage updates its EMA codebook on the residual it sees
            code = q.latent.detach()
            total = total + code
            residual = residual - code
            ids.append(q.indices)
            stats[f"usage_{i}"] = q.stats["usage"]
            stats[f"perplexity_{i}"] = q.stats["perplexity"]
        loss = self.beta * F.mse_loss(z, total)
        latent = z + (total - z).detach()  # (B, C, *S) straight-through
        stats["usage"], stats["perplexity"] = stats["usage_0"], stats["perplexity_0"]
        return Bottleneck(latent, loss, torch.stack(ids, dim=-1), stats)


class FiniteScalarQuantizer(nn.Module):
    """FSQ (Mentzer et al. 2023): ``dim`` channels are projected to ``len(levels)``, each bounded
    by tanh and rounded to ``levels[i]`` values (vector-quantize-pytorch's FSQ), then projected
    back. The implicit codebook has prod(levels) entries and needs no codebook loss.

    The tanh bound can saturate: with nothing pulling them back, the projected values drift to
    |u| >> 1 within ~100 steps on our data and every token lands on the same corner code
    (perplexity ~1; measured). ``bound_weight`` adds ``mean(relu(|u| - 1)^2)``, which keeps u
    where tanh still has a gradient; it is zero for well-behaved latents.
    """

    def __init__(self, *, dim: int, levels: tuple[int, ...] = (8, 5, 5, 5), bound_weight: float = 1.0):
        super().__init__()
        from vector_quantize_pytorch import FSQ

        self.dim, self.bound_weight = dim, bound_weight
        self.project_in = nn.Linear(dim, len(levels))
        self.project_out = nn.Linear(len(levels), dim)
        self.fsq = FSQ(levels=list(levels))  # dim == len(levels): no projection inside
        self.codebook_size = int(self.fsq.codebook_size)

    @property
    def in_channels(self) -> int:
        return self.dim

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Token ids (B, *S) -> latents (B, C, *S)."""
        # the library treats >= 3-D ids as images (channel-first); give it (B, N) and reshape
        codes = self.fsq.indices_to_codes(indices.reshape(indices.shape[0], -1))  # (B, N, L)
        codes = codes.reshape(*indices.shape, -1)  # (B, *S, L)
        return torch.movedim(self.project_out(codes), -1, 1)

    def forward(self, z: torch.Tensor) -> Bottleneck:
        u = self.project_in(torch.movedim(z.float(), 1, -1))  # (B, *S, L)
        codes, indices = self.fsq(u.reshape(u.shape[0], -1, u.shape[-1]))  # (B, N, L) in [-1, 1], (B, N)
        codes, indices = codes.reshape(u.shape), indices.reshape(u.shape[:-1]).long()
        loss = self.bound_weight * F.relu(u.abs() - 1.0).pow(2).mean()
        latent = torch.movedim(self.project_out(codes), -1, 1)  # (B, C, *S)
        return Bottleneck(latent, loss, indices, code_stats(indices, self.codebook_size))


class GaussianBottleneck(nn.Module):
    """Continuous latent of a KL-regularised VAE (DOME's tokenizer style).

    The encoder emits 2C channels: mean and log-variance. Training samples mu + sigma * eps;
    evaluation uses the mean. The loss is ``kl_weight`` times the KL divergence to N(0, I),
    summed over channels and averaged over positions. ``logvar_offset`` is added to the
    encoder's log-variance: at -6 a fresh encoder's samples carry noise of std 0.05 instead of 1,
    so the decoder sees the mean from the first step instead of learning through pure noise.
    """

    def __init__(self, *, dim: int, kl_weight: float = 1e-4, logvar_offset: float = 0.0):
        super().__init__()
        self.dim, self.kl_weight, self.logvar_offset = dim, kl_weight, logvar_offset
        self.codebook_size = 0

    @property
    def in_channels(self) -> int:
        return 2 * self.dim

    def forward(self, z: torch.Tensor) -> Bottleneck:
        mean, logvar = z.float().chunk(2, dim=1)  # (B, C, *S) each
        logvar = (logvar + self.logvar_offset).clamp(-30.0, 20.0)
        latent = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean) if self.training else mean
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(1).mean()
        return Bottleneck(latent, self.kl_weight * kl, None,
                          {"kl": float(kl.detach()), "latent_std": float(mean.detach().std())})
