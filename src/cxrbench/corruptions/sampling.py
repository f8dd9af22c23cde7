"""Distributions driven by counter-based uniforms (inverse-CDF sampling, so no generator state)."""

from __future__ import annotations

import torch

_MAX_STEPS = 200


def _pmf(k: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """Poisson probability of ``k`` at mean ``lam`` (float64; pmf(0 | 0) = 1, pmf(k > 0 | 0) = 0)."""
    return torch.exp(torch.special.xlogy(k, lam) - lam - torch.lgamma(k + 1.0))


def poisson_quantile(lam: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The Poisson(``lam``) quantile of ``u``: the smallest integer k with P(N <= k) >= u (float64, elementwise).

    With ``u`` uniform this is an exact Poisson sample for any mean. Start from the Cornish-Fisher guess
    ``lam + sqrt(lam) z + (z^2 - 1) / 6`` (z the normal quantile of u), evaluate the CDF there once with the
    regularised upper incomplete gamma function (P(N <= k) = Q(k + 1, lam)), then step up or down with the
    pmf until the defining inequality holds (one or two steps in practice). Vectorised; the CDF is accurate
    to ~1e-13, so a sample can differ from an exact-arithmetic one only when u lies that close to a CDF step.
    """
    lam = lam.to(torch.float64)
    u = u.to(torch.float64).expand_as(lam)
    z = torch.special.ndtri(u)
    k = torch.floor(lam + torch.sqrt(lam) * z + (z * z - 1.0) / 6.0 + 0.5).clamp_min_(0.0)
    cdf = torch.special.gammaincc(k + 1.0, lam)
    for _ in range(_MAX_STEPS):          # walk up while P(N <= k) < u
        low = cdf < u
        if not bool(low.any()):
            break
        k = torch.where(low, k + 1.0, k)
        cdf = torch.where(low, cdf + _pmf(k, lam), cdf)
    else:
        raise RuntimeError("poisson_quantile did not converge (walking up)")
    for _ in range(_MAX_STEPS):          # walk down while P(N <= k - 1) >= u
        p = _pmf(k, lam)
        high = (k > 0) & (cdf - p >= u)
        if not bool(high.any()):
            break
        k = torch.where(high, k - 1.0, k)
        cdf = torch.where(high, cdf - p, cdf)
    else:
        raise RuntimeError("poisson_quantile did not converge (walking down)")
    return k
