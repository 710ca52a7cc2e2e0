"""Dataset-scale evaluation across many checkpoints: every model x image x method with
each registered metric's per-image AUC, streamed to Parquet chunk by chunk, computed in
this process or by Ray actors (one per GPU). See `analysis.Evaluation`."""

from .analysis import CLASS_MODES, DEFAULT_CHUNK, Evaluation, EvaluationInputs, MetricChoice, runs_dir
from .executors import ExecutionOptions, LocalExecutor, RayExecutor
from .results import EvaluationResult, Score
from .sources import DataSource, ModelSource, model_sources
from .store import ResultsBusy, ResultsDir, ResultsError

__all__ = [
    "CLASS_MODES", "DEFAULT_CHUNK", "Evaluation", "EvaluationInputs", "MetricChoice", "runs_dir", "ExecutionOptions",
    "LocalExecutor", "RayExecutor", "EvaluationResult", "Score", "DataSource", "ModelSource", "model_sources",
    "ResultsBusy", "ResultsDir", "ResultsError",
]
