"""Can a comparison tell two models apart? A paired t interval of the accuracy difference over seeds.

``senet compare`` trains every model with the same seeds, so seed k of model B and seed k of model A share their
data order, augmentation and held-out split: the per-seed differences d_k = B_k - A_k remove that shared noise.
With n >= 2 seeds the mean difference has a Student-t confidence interval
``mean(d) +- t_{(1+c)/2, n-1} * sd(d) / sqrt(n)``; the models are told apart when the interval excludes 0.
One seed gives no interval at all - which is the honest answer for a single run, not a zero-width one.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

__all__ = ["PairedDifference", "paired_difference", "t_quantile"]


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularized incomplete beta function (modified Lentz), for x < (a+1)/(a+b+2)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def _t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` > 0 degrees of freedom (bisection on the exact CDF)."""
    if not 0.0 < p < 1.0 or df <= 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0, got p={p!r}, df={df!r}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while _t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _t_cdf(mid, df) < p else (lo, mid)
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


@dataclass
class PairedDifference:
    """``candidate - baseline`` over ``n`` paired seeds, in the units given (fractions of 1 for accuracies)."""

    n: int
    mean: float
    low: float | None  # the confidence interval; None with one seed
    high: float | None
    confidence: float

    @property
    def decided(self) -> bool:
        """True when the interval excludes 0: at this confidence the data tell the two apart."""
        return self.low is not None and (self.low > 0 or self.high < 0)

    def verdict(self, candidate: str, baseline: str, *, scale: float = 100.0, unit: str = "points") -> str:
        """One sentence in words, e.g. ``se_resnet20 is better than resnet20 by 0.41 points (95% CI ...)``."""
        if self.low is None:
            return (f"one seed: no interval, so this run cannot tell {candidate} from {baseline} "
                    f"(difference {scale * self.mean:+.2f} {unit}); more seeds (--seeds N) can")
        interval = (f"{round(100 * self.confidence)}% CI {scale * self.low:+.2f} to {scale * self.high:+.2f} {unit}, "
                    f"{self.n} seeds")
        if not self.decided:
            return (f"the data cannot tell {candidate} from {baseline}: difference {scale * self.mean:+.2f} {unit} "
                    f"({interval}) includes 0")
        word = "better" if self.mean > 0 else "worse"
        return f"{candidate} is {word} than {baseline} by {abs(scale * self.mean):.2f} {unit} ({interval})"


def paired_difference(candidate: list[float], baseline: list[float], confidence: float = 0.95) -> PairedDifference:
    """The mean of ``candidate[k] - baseline[k]`` and its Student-t interval (see the module docstring)."""
    if len(candidate) != len(baseline) or not candidate:
        raise ValueError(f"paired results need the same number (>= 1) of seeds, got {len(candidate)} and "
                         f"{len(baseline)}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    diffs = [c - b for c, b in zip(candidate, baseline)]
    n, mean = len(diffs), statistics.fmean(diffs)
    if n == 1:
        return PairedDifference(1, mean, None, None, confidence)
    half = t_quantile((1.0 + confidence) / 2.0, n - 1) * statistics.stdev(diffs) / math.sqrt(n)
    return PairedDifference(n, mean, mean - half, mean + half, confidence)
