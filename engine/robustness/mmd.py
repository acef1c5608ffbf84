"""Maximum mean discrepancy between two sets of images, and its permutation test.

Seed 001 (after Gao et al. 2023, Eq. 3) measures how far a perturbed prompt c' moves the image
distribution by the MMD between generations x_i ~ p(x|c) and x̄_j ~ p(x|c') in a feature space φ:

    MMD²(X, Y) = 1/N² Σ_ij κ(x_i, x_j) + 1/M² Σ_ij κ(ȳ_i, ȳ_j) − 2/(NM) Σ_ij κ(x_i, ȳ_j)

(the biased V-statistic: never negative, zero for identical sets). κ is a Gaussian kernel
exp(−‖a − b‖² / (2 h²)) with h from the median heuristic on the pooled set, which is where the
kernel is most informative and makes the number comparable across feature spaces.

The two-sample test ("is p(x|c') = p(x|c)?") permutes the pooled set: under the null hypothesis
the labels are exchangeable, so the p-value (1 + #{MMD²_perm ≥ MMD²}) / (1 + B) is valid (its
distribution is uniform, up to the discreteness of the permutations) for any sample size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TwoSampleResult:
    mmd2: float
    p_value: float
    bandwidth: float


def _sq_dists(z: np.ndarray) -> np.ndarray:
    sq = (z * z).sum(1)
    d = sq[:, None] + sq[None, :] - 2.0 * z @ z.T
    return np.maximum(d, 0.0)


def median_bandwidth(d2: np.ndarray) -> float:
    """The median heuristic: h = sqrt(median of the pairwise squared distances / 2)."""
    off = d2[~np.eye(len(d2), dtype=bool)]
    med = float(np.median(off)) if off.size else 0.0
    return float(np.sqrt(med / 2.0)) if med > 0 else 1.0


def _mmd2_from_kernel(k: np.ndarray, in_x: np.ndarray) -> float:
    x, y = in_x, ~in_x
    n, m = x.sum(), y.sum()
    return float(
        k[np.ix_(x, x)].sum() / n**2
        + k[np.ix_(y, y)].sum() / m**2
        - 2.0 * k[np.ix_(x, y)].sum() / (n * m)
    )


def mmd2(x: np.ndarray, y: np.ndarray, bandwidth: float | None = None) -> float:
    """MMD² (V-statistic) between rows of ``x`` (N, D) and ``y`` (M, D), Gaussian kernel."""
    z = np.concatenate([np.asarray(x, np.float64), np.asarray(y, np.float64)])
    d2 = _sq_dists(z)
    h = bandwidth or median_bandwidth(d2)
    in_x = np.arange(len(z)) < len(x)
    return _mmd2_from_kernel(np.exp(-d2 / (2 * h * h)), in_x)


def two_sample_test(
    x: np.ndarray, y: np.ndarray, permutations: int = 1000, seed: int = 0
) -> TwoSampleResult:
    """MMD² of ``x`` vs ``y`` and the permutation test's p-value (``permutations`` draws)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if len(x) < 2 or len(y) < 2:
        raise ValueError("the two-sample test needs at least two samples on each side")
    z = np.concatenate([x, y])
    d2 = _sq_dists(z)
    h = median_bandwidth(d2)
    k = np.exp(-d2 / (2 * h * h))
    labels = np.arange(len(z)) < len(x)
    observed = _mmd2_from_kernel(k, labels)
    rng = np.random.default_rng(seed)
    exceed = 0
    for _ in range(permutations):
        if _mmd2_from_kernel(k, rng.permutation(labels)) >= observed - 1e-12:
            exceed += 1
    return TwoSampleResult(observed, (1 + exceed) / (1 + permutations), h)
