"""ROAR: remove and retrain (Hooker et al., NeurIPS 2019), and its KAR variant.

For every ranking method and every fraction f, the top f of the pixels of every train
and test image (ranked by |attribution| of the base model's top-1 class, ties broken at
random with a fixed seed) are replaced by the per-channel mean of the training images;
the same architecture is retrained from scratch with a fixed recipe and seed and its
test accuracy reported. A random ranking is always included as the baseline; a better
method makes accuracy fall faster than random (lower area under the curve). KAR keeps
the top f and replaces the rest (higher area is better).

This package holds the settings and the pixel removal; the run itself is the analysis
`explain.analyses.roar.RoarAnalysis` (a job on the shared runner, results stored one
retraining at a time).
"""

from .removal import available_methods, degrade, method_ranker, pixel_order, probe_bundle, random_ranker
from .settings import (
    DEFAULT_FRACTIONS, DEFAULT_METHODS, METRICS, MODES, RANDOM, Ranker, RoarSettings, entry_key, experiment_key,
    parse_percentages, ranking_label,
)

__all__ = [
    "available_methods", "degrade", "method_ranker", "pixel_order", "probe_bundle", "random_ranker",
    "DEFAULT_FRACTIONS", "DEFAULT_METHODS", "METRICS", "MODES", "RANDOM", "Ranker", "RoarSettings", "entry_key",
    "experiment_key", "parse_percentages", "ranking_label",
]
