"""ROAR: remove and retrain (Hooker et al., NeurIPS 2019), and its KAR variant.

For every ranking method and every fraction f, the top f of the pixels of every train
and test image (ranked by |attribution| of the base model's top-1 class, ties broken at
random with a fixed seed) are replaced by the per-channel mean of the training images;
the same architecture is retrained from scratch with a fixed recipe and seed and its
test accuracy reported. A random ranking is always included as the baseline; a better
method makes accuracy fall faster than random (lower area under the curve). KAR keeps
the top f and replaces the rest (higher area is better).

Results are saved as JSON per experiment (dataset, architecture, recipe, seed, mode)
with one entry per (method and parameters, fraction, repeat), written as soon as each
retraining ends: finished runs load instantly and an interrupted run resumes with the
missing retrainings only. Pixel rankings are saved too (`.npy`, no pickles).

`start_roar_job` runs `run_roar` in a worker thread, one job per settings in the
process (a second start of the same settings returns the running job), at most
`MAX_RUNNING_ROAR_JOBS` at once; progress is read from the job's `RoarStatus`.
"""

from .jobs import MAX_RUNNING_ROAR_JOBS, RoarJob, RoarJobLimitError, get_roar_job, start_roar_job
from .removal import degrade, method_ranker, pixel_order, random_ranker
from .results import RoarCurve, RoarSummary, curve_auc, summarize
from .run import RoarCancelled, RoarStatus, available_methods, probe_bundle, run_roar
from .settings import (
    DEFAULT_FRACTIONS, DEFAULT_METHODS, METRICS, MODES, RANDOM, MethodSpec, Ranker, RoarSettings, entry_key,
    experiment_key, job_key, parse_percentages,
)
from .store import RoarStore, load_summary
from ...models.small_cnn import architecture_name

__all__ = [
    "MAX_RUNNING_ROAR_JOBS", "RoarJob", "RoarJobLimitError", "get_roar_job", "start_roar_job", "degrade", "method_ranker", "pixel_order", "random_ranker",
    "RoarCurve", "RoarSummary", "curve_auc", "summarize", "RoarCancelled", "RoarStatus", "available_methods",
    "probe_bundle", "run_roar", "DEFAULT_FRACTIONS", "DEFAULT_METHODS", "METRICS", "MODES", "RANDOM", "MethodSpec",
    "Ranker", "RoarSettings", "entry_key", "experiment_key", "job_key", "parse_percentages", "RoarStore",
    "load_summary", "architecture_name",
]
