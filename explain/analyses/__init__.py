"""Analyses: what pages, the report CLI and batch runs compute, each defined once as
frozen settings + a run that yields partial results + a frozen result that exposes
plain data (figures, tables, image strips; `reports/` builds sections from them; see
`base`). Importing this package registers every analysis kind."""

from .attribution import AttributionMaps, AttributionResult
from .compare import ComparisonResult, ModelComparison, comparison_from_results
from .base import ANALYSES, Analysis, analysis_from_record, register_analysis, run_directly
from .inputs import (ClassChoice, CroppedImages, ImageRef, ImagesView, PreparedImages, Subject, crop_images,
                     prepare_images)
from .mistakes import MistakesAnalysis, MistakesResult, mistakes_from_results
from .metric import MetricAnalysis, MetricResult
from .roar import RoarAnalysis, RoarInputs, RoarResult
from .shap_summary import ShapSummary, ShapSummaryResult

__all__ = [
    "AttributionMaps",
    "AttributionResult",
    "ANALYSES",
    "Analysis",
    "analysis_from_record",
    "register_analysis",
    "run_directly",
    "ClassChoice",
    "ImageRef",
    "ImagesView",
    "PreparedImages",
    "Subject",
    "prepare_images",
    "CroppedImages",
    "crop_images",
    "ComparisonResult",
    "ModelComparison",
    "comparison_from_results",
    "MistakesAnalysis",
    "MistakesResult",
    "mistakes_from_results",
    "MetricAnalysis",
    "MetricResult",
    "RoarAnalysis",
    "RoarInputs",
    "RoarResult",
    "ShapSummary",
    "ShapSummaryResult",
]
