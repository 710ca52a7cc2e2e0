"""Analyses: what pages, the report CLI and batch runs compute, each defined once as
frozen settings + a run that yields partial results + a frozen result that exposes
plain data (figures, tables, image strips; `reports/` builds sections from them; see
`base`). Importing this package registers every analysis kind."""

from .attribution import AttributionMaps, AttributionResult
from .base import ANALYSES, Analysis, analysis_from_record, register_analysis, run_directly
from .inputs import ClassChoice, ImageRef, ImagesView, PreparedImages, Subject, prepare_images
from .metric import MetricAnalysis, MetricResult
from .roar import RoarAnalysis, RoarInputs, RoarResult
from .shap_summary import ShapSummary, ShapSummaryResult

__all__ = [
    "AttributionMaps", "AttributionResult", "ANALYSES", "Analysis", "analysis_from_record", "register_analysis",
    "run_directly", "ClassChoice", "ImageRef", "ImagesView", "PreparedImages", "Subject", "prepare_images",
    "MetricAnalysis", "MetricResult", "RoarAnalysis", "RoarInputs", "RoarResult", "ShapSummary", "ShapSummaryResult",
]
