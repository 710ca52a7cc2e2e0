"""Metrics: plain functions over a batch of images and maps that return small frozen
results in one shape (`Curves`); each metric's metadata (`MetricInfo`) sits next to its
code, and each metric family is registered once (`registry`) so pages, reports, the
CLI and batch evaluation find it."""

from .base import Curves, MetricInfo, Pairs, Skipped, trapezoid_auc
from .deletion import DELETION, INSERTION, DeletionInsertionResult, deletion_insertion
from .substrates import SUBSTRATES
from .pic import AIC, SIC, PicResult, PicStrip, pic_metrics, pic_strip, random_seed_masks
from .registry import (Comparison, ComparisonInput, Metric, MetricFamily, MetricInput, Strip, get_metric, list_metrics,
                       register_metric, score_infos)
from . import irof  # noqa: F401,E402  (registers IROF: a metric is its module plus this line)
from . import randomisation, random_logit, agreement, robustness  # noqa: F401,E402  (the sanity checks)
from . import localisation, complexity  # noqa: F401,E402  (ground-truth localisation; complexity of the maps)
from . import axiomatic  # noqa: F401,E402  (completeness, non-sensitivity, input invariance)
from . import road, faithfulness_correlation, monotonicity  # noqa: F401,E402  (faithfulness catalogue, part 1)
from . import patch_removal, sufficiency, sensitivity_n  # noqa: F401,E402  (faithfulness II: patches, sufficiency)
from . import stability  # noqa: F401,E402  (robustness: average sensitivity, local Lipschitz, relative stability)
from . import mprt_revisited  # noqa: F401,E402  (efficient and smooth MPRT, on the sanity checks page)

__all__ = [
    "Curves", "MetricInfo", "Pairs", "Skipped", "trapezoid_auc",
    "DELETION", "INSERTION", "SUBSTRATES", "DeletionInsertionResult", "deletion_insertion",
    "AIC", "SIC", "PicResult", "PicStrip", "pic_metrics", "pic_strip", "random_seed_masks",
    "Comparison", "ComparisonInput", "Metric", "MetricFamily", "MetricInput", "Strip", "get_metric", "list_metrics",
    "register_metric", "score_infos",
]
