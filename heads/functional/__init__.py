"""Heatmap decoders and regularisers for 1-D, 2-D and 3-D maps (pure functions).

The rank of the input decides the number of coordinate dims D: ``(B, K, W)`` -> 1-D,
``(B, K, H, W)`` -> 2-D, ``(B, K, Dz, H, W)`` -> 3-D. Every decoder returns coordinates in the
project's normalised convention (:mod:`rle.coords`): ``(..., D)`` in ``[-0.5, 0.5]`` of the map,
bin ``j`` at ``(j + 0.5)/n - 0.5``, order ``(x, y[, z])``. Convert to a reference frame with
:func:`rle.coords.to_frame`.

Expectations are computed marginal-first (sum the probabilities to one 1-D marginal per axis, then
dot with the 1-D grid): no full-size coordinate grid is ever built.

Modules: :mod:`~heads.functional.integral` (softmax, DSNT expectation, soft-argmax, debiased
soft-argmax, confidence, the map's variance and log-likelihood as a predictive density),
:mod:`~heads.functional.regularisers` (DSNT's regularisers and per-location losses),
:mod:`~heads.functional.sampling` (sampling-argmax). Import from this package: the split is an
implementation detail.

Shape letters: B batch, K keypoints, D coordinate dims, H/W map size (Dz depth bins), S samples.
"""

from heads.functional.integral import (
    DEBIASED_VARIANTS,
    debiased_soft_argmax,
    dsnt,
    heatmap_confidence,
    heatmap_expectation,
    heatmap_log_likelihood,
    heatmap_variance,
    soft_argmax,
    spatial_softmax,
)
from heads.functional.regularisers import (
    euclidean_losses,
    gaussian_heatmaps,
    js_reg,
    kl_reg,
    variance_reg,
)
from heads.functional.sampling import (
    BASES,
    FIXED_WIDTHS,
    SAMPLING_VARIANTS,
    basis_variance,
    mixture_log_likelihood,
    mixture_variance,
    sampling_argmax,
    sampling_argmax_tau,
)

__all__ = [
    "BASES",
    "DEBIASED_VARIANTS",
    "FIXED_WIDTHS",
    "SAMPLING_VARIANTS",
    "basis_variance",
    "debiased_soft_argmax",
    "dsnt",
    "euclidean_losses",
    "gaussian_heatmaps",
    "heatmap_confidence",
    "heatmap_expectation",
    "heatmap_log_likelihood",
    "heatmap_variance",
    "js_reg",
    "kl_reg",
    "mixture_log_likelihood",
    "mixture_variance",
    "sampling_argmax",
    "sampling_argmax_tau",
    "soft_argmax",
    "spatial_softmax",
    "variance_reg",
]
