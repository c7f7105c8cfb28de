"""Per-class running statistics of excitation vectors, and the numbers the analysis reports per block.

An SE block's excitation for one image is the vector s in [0, 1]^C (Eq. 3 of arXiv 1709.01507). For every block
:class:`ClassStats` keeps, per class k and channel c, the count n_k, the mean mu_kc and the sum of squared
deviations M2_kc (Welford's algorithm; batches are merged with Chan et al.'s parallel update). Accumulators are
float64 and their size is O(classes x channels), whatever the number of images.

Definitions used by :func:`block_metrics` (N = sum_k n_k, mu_c = sum_k n_k mu_kc / N the mean over all images):

* ``class_specificity`` - the share of excitation variance explained by the class, pooled over channels::

      B = sum_c sum_k n_k (mu_kc - mu_c)^2        (between-class sum of squares)
      W = sum_c sum_k M2_kc                        (within-class sum of squares)
      class_specificity = B / (B + W)              (0 when B + W = 0)

  This is eta^2 of a one-way ANOVA with the channels' sums of squares added. It is 0 when every class has the same
  mean excitation (class-agnostic block, the paper's early layers) and 1 when the excitation is a function of the
  class alone. With n images per class and K classes a class-agnostic block still scores about (K - 1) / (N - 1)
  from sampling noise (about 0.02 for 10 classes x 50 images).
* ``class_distance`` - the mean over class pairs k < l of the root-mean-square channel difference
  ||mu_k - mu_l||_2 / sqrt(C), in the gate's units (0..1 for a sigmoid), so blocks of different width compare.
* ``mean_excitation`` - the mean of mu_c over channels; ``saturated_high`` / ``saturated_low`` - the fraction of
  channels with mu_c > 0.9 (near identity, the paper's late blocks) / mu_c < 0.1.
* ``within_class_std`` - the sample standard deviation sqrt(M2_kc / (n_k - 1)) averaged over channels and then
  over the classes with at least two images: the instance-specific spread of the paper's Fig. 7.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["METRIC_NAMES", "SATURATION_HIGH", "SATURATION_LOW", "ClassStats", "block_metrics"]

SATURATION_HIGH = 0.9
SATURATION_LOW = 0.1
METRIC_NAMES = (
    "class_specificity",
    "class_distance",
    "mean_excitation",
    "saturated_high",
    "saturated_low",
    "within_class_std",
)


@dataclass
class ClassStats:
    """Count, mean and M2 per (class, channel) of one block's excitation vectors (float64 tensors).

    ``count`` has shape (K,), ``mean`` and ``m2`` have shape (K, C). Rows of classes never seen are zero.
    """

    count: torch.Tensor
    mean: torch.Tensor
    m2: torch.Tensor

    @classmethod
    def empty(cls, num_classes: int, channels: int, device: torch.device | str = "cpu") -> ClassStats:
        z = torch.zeros(num_classes, channels, dtype=torch.float64, device=device)
        return cls(torch.zeros(num_classes, dtype=torch.float64, device=device), z, z.clone())

    @classmethod
    def from_batch(cls, values: torch.Tensor, labels: torch.Tensor, num_classes: int) -> ClassStats:
        """Exact statistics of one batch: ``values`` (B, C) float64, ``labels`` (B,) int64 on the same device.

        Two passes over the batch (mean, then squared deviations from it), so no catastrophic cancellation.
        """
        channels = values.shape[1]
        count = torch.bincount(labels, minlength=num_classes).to(torch.float64)
        sums = values.new_zeros(num_classes, channels).index_add_(0, labels, values)
        mean = sums / count.clamp(min=1).unsqueeze(1)
        dev = values - mean.index_select(0, labels)
        m2 = values.new_zeros(num_classes, channels).index_add_(0, labels, dev * dev)
        return cls(count, mean, m2)

    @property
    def num_classes(self) -> int:
        return self.mean.shape[0]

    @property
    def channels(self) -> int:
        return self.mean.shape[1]

    def merge_(self, other: ClassStats) -> ClassStats:
        """Fold ``other`` into ``self`` in place (Chan, Golub, LeVeque parallel update) and return ``self``.

        n = n_a + n_b;  delta = mu_b - mu_a;  mu = mu_a + delta n_b / n;  M2 = M2_a + M2_b + delta^2 n_a n_b / n.
        """
        if other.num_classes > self.num_classes:
            self.grow_(other.num_classes)
        k = other.num_classes
        na, nb = self.count[:k].unsqueeze(1), other.count.unsqueeze(1)
        n = na + nb
        safe_n = n.clamp(min=1)
        delta = other.mean - self.mean[:k]
        self.mean[:k] += delta * (nb / safe_n)
        self.m2[:k] += other.m2 + delta * delta * (na * nb / safe_n)
        self.count[:k] += other.count
        return self

    def grow_(self, num_classes: int) -> ClassStats:
        """Extend to ``num_classes`` rows (new classes start empty)."""
        extra = num_classes - self.num_classes
        if extra > 0:
            pad = self.mean.new_zeros(extra, self.channels)
            self.mean = torch.cat([self.mean, pad])
            self.m2 = torch.cat([self.m2, pad.clone()])
            self.count = torch.cat([self.count, self.count.new_zeros(extra)])
        return self

    def to(self, device: torch.device | str, copy: bool = False) -> ClassStats:
        """The same statistics on ``device``; ``copy=True`` never shares storage with ``self``."""
        return ClassStats(*(t.to(device, copy=copy) for t in (self.count, self.mean, self.m2)))

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.count, self.mean, self.m2))

    @property
    def total(self) -> int:
        return int(self.count.sum().item())

    def overall_mean(self) -> torch.Tensor:
        """mu_c, the mean excitation per channel over all recorded images, shape (C,)."""
        n = self.count.sum()
        if n == 0:
            return self.mean.new_zeros(self.channels)
        return (self.count.unsqueeze(1) * self.mean).sum(0) / n

    def std(self) -> torch.Tensor:
        """Sample standard deviation per (class, channel), shape (K, C); NaN where a class has fewer than 2 images."""
        denom = (self.count - 1).unsqueeze(1)
        out = (self.m2 / denom.clamp(min=1)).clamp(min=0).sqrt()
        return torch.where(denom > 0, out, torch.full_like(out, float("nan")))


def block_metrics(stats: ClassStats) -> dict[str, Any]:
    """The per-block numbers defined in the module docstring, as plain Python floats, plus ``images``/``channels``."""
    s = stats.to("cpu")
    seen = s.count > 0
    mu = s.overall_mean()
    between = (s.count.unsqueeze(1) * (s.mean - mu) ** 2)[seen].sum()
    within = s.m2[seen].sum()
    total = between + within
    specificity = float(between / total) if total > 0 else 0.0

    means = s.mean[seen]
    if means.shape[0] >= 2:
        d = torch.cdist(means.unsqueeze(0), means.unsqueeze(0)).squeeze(0) / s.channels**0.5
        iu = torch.triu_indices(d.shape[0], d.shape[0], offset=1)
        distance = float(d[iu[0], iu[1]].mean())
    else:
        distance = 0.0

    multi = s.count >= 2
    spread = float(s.std()[multi].mean(1).mean()) if bool(multi.any()) else float("nan")
    return {
        "images": s.total,
        "channels": s.channels,
        "class_specificity": specificity,
        "class_distance": distance,
        "mean_excitation": float(mu.mean()) if s.total else float("nan"),
        "saturated_high": float((mu > SATURATION_HIGH).double().mean()) if s.total else float("nan"),
        "saturated_low": float((mu < SATURATION_LOW).double().mean()) if s.total else float("nan"),
        "within_class_std": spread,
    }
