"""Generation quality in the feature space of a passed occupancy feature extractor.

**These are not image FID.** No Inception network is involved: a feature extractor trained on
occupancy (for example UniScene's ``Autoencoder_2D``, 2048-d per frame; occ4d's own is trained by
the world-model issue) maps each generated and each real frame or clip to a vector, and the
figures compare the two sets of vectors (PROTOCOLS §3.10). Numbers are comparable only between
runs that used the same extractor weights.

- Frechet distance: ||mu_r - mu_g||^2 + tr(S_r + S_g - 2 sqrtm(S_r S_g)), covariances with N-1
  normalisation, SciPy's ``sqrtm`` with the imaginary part dropped and no diagonal regularisation
  (UniScene's "F3D" / COME).
- "MMD" with a linear kernel: mean(XX^T) + mean(YY^T) - 2 mean(XY^T) = ||mu_X - mu_Y||^2 (UniScene).
- Precision / recall of Kynkaanniemi et al. (2019): k-NN balls around each real (generated)
  feature; precision = share of generated features inside some real ball, recall the converse.

Features are kept on their device and gathered across processes in ``compute()``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from occ4d.core.errors import DataError
from occ4d.metrics.reduce import all_gather_cat


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two (N, D) feature sets (float64)."""
    from scipy import linalg

    real = np.asarray(real, dtype=np.float64)
    fake = np.asarray(fake, dtype=np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"need two (N, D) feature sets of equal D, got {real.shape} and {fake.shape}")
    if len(real) < 2 or len(fake) < 2:
        raise ValueError("the Frechet distance needs at least 2 samples per set")
    mu1, mu2 = real.mean(0), fake.mean(0)
    s1, s2 = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    s1, s2 = np.atleast_2d(s1), np.atleast_2d(s2)
    covmean = linalg.sqrtm(s1.dot(s2))
    if isinstance(covmean, tuple):  # older SciPy returns (sqrtm, errest) with disp=False
        covmean = covmean[0]
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def linear_mmd(real: np.ndarray, fake: np.ndarray) -> float:
    """Linear-kernel MMD^2 = ||mean(real) - mean(fake)||^2 (equal to UniScene's kernel form)."""
    diff = np.asarray(real, dtype=np.float64).mean(0) - np.asarray(fake, dtype=np.float64).mean(0)
    return float(diff.dot(diff))


def _kth_nn_radius(x: torch.Tensor, k: int, chunk: int) -> torch.Tensor:
    radii = []
    for i in range(0, len(x), chunk):
        d = torch.cdist(x[i:i + chunk], x)
        radii.append(d.kthvalue(k + 1, dim=1).values)  # +1: the point itself is at distance 0
    return torch.cat(radii)


def _coverage(query: torch.Tensor, ref: torch.Tensor, radii: torch.Tensor, chunk: int) -> float:
    inside = []
    for i in range(0, len(query), chunk):
        d = torch.cdist(query[i:i + chunk], ref)
        inside.append((d <= radii[None]).any(dim=1))
    return float(torch.cat(inside).double().mean())


def precision_recall(
    real: torch.Tensor, fake: torch.Tensor, k: int = 3, chunk: int = 1024
) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) with k nearest neighbours."""
    real = torch.as_tensor(real, dtype=torch.float64)
    fake = torch.as_tensor(fake, dtype=torch.float64, device=real.device)
    if len(real) <= k or len(fake) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} samples per set")
    r_real = _kth_nn_radius(real, k, chunk)
    r_fake = _kth_nn_radius(fake, k, chunk)
    return _coverage(fake, real, r_real, chunk), _coverage(real, fake, r_fake, chunk)


def _canonical(x: torch.Tensor) -> torch.Tensor:
    """Rows in lexicographic order: float sums (means, covariances) then do not depend on the
    order samples reached the processes, so any process count gives bit-identical figures."""
    order = np.lexsort(x.numpy().T[::-1])
    return x[torch.from_numpy(order)]


class GenerationMetric:
    """Accumulates extractor features of real and generated samples.

    Args:
        extractor: maps a batch of samples to (B, D) features (or any (B, ...) tensor, flattened);
            called under ``torch.no_grad()``. ``None`` means ``update`` receives features.
        name: the extractor's name, reported with the figures (e.g. a checkpoint name).
        k: neighbours for precision / recall.
    """

    def __init__(self, extractor: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 name: str = "features", k: int = 3):
        self.extractor, self.name, self.k = extractor, name, k
        self.reset()

    @property
    def protocol(self) -> str:
        return f"generation[{self.name}] (not image FID)"

    def reset(self) -> None:
        self.real: list[torch.Tensor] = []
        self.fake: list[torch.Tensor] = []

    def _features(self, x) -> torch.Tensor:
        x = torch.as_tensor(x)
        if self.extractor is not None:
            with torch.no_grad():
                x = self.extractor(x)
        if x.dim() < 2:
            raise DataError(None, f"features must be (B, D), got shape {tuple(x.shape)}")
        return x.detach().reshape(x.shape[0], -1).to(torch.float64)

    def update(self, real=None, fake=None) -> None:
        """Add a batch of real and/or generated samples (or features when no extractor)."""
        if real is not None:
            self.real.append(self._features(real))
        if fake is not None:
            self.fake.append(self._features(fake))

    def compute(self) -> dict:
        if not self.real or not self.fake:
            raise DataError(None, "generation metrics need both real and generated samples")
        real = _canonical(all_gather_cat(torch.cat(self.real)).cpu())
        fake = _canonical(all_gather_cat(torch.cat(self.fake)).cpu())
        precision, recall = precision_recall(real, fake, self.k)
        return {
            "protocol": self.protocol,
            "real_samples": len(real),
            "generated_samples": len(fake),
            "frechet_distance": frechet_distance(real.numpy(), fake.numpy()),
            "mmd_linear": linear_mmd(real.numpy(), fake.numpy()),
            f"precision@k={self.k}": precision,
            f"recall@k={self.k}": recall,
        }
