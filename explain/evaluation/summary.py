"""Numbers that compare checkpoints and methods, from the rows table (plain pandas):
means with seeded bootstrap 95 % intervals, accuracy per model, per-class means, the
worst images per method. Figures and report sections are built from these."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

RESAMPLES = 1000
LEVEL = 0.95
_INDEX_BUDGET = 4_000_000  # resampled indices held at once (bounds the bootstrap's memory for any n)


def bootstrap_ci(
    values: np.ndarray, seed: int = 0, resamples: int = RESAMPLES, level: float = LEVEL
) -> tuple[float, float, float]:
    """(mean, low, high): the mean of the finite values and the percentile interval of
    the means of `resamples` resamples with replacement (seeded, so reproducible).
    Fewer than two values: the interval is NaN."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    if v.size < 2:
        return float(v.mean()), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    step = max(1, _INDEX_BUDGET // v.size)
    means = np.concatenate([v[rng.integers(0, v.size, (min(step, resamples - start), v.size))].mean(axis=1)
                            for start in range(0, resamples, step)])
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(v.mean()), float(low), float(high)


def per_image(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per model x image (the method columns dropped): predictions and labels."""
    columns = [
        "model_index",
        "model",
        "image_index",
        "image",
        "label",
        "prediction",
        "prediction_name",
        "probability",
        "correct",
    ]
    return rows.drop_duplicates(["model_index", "image_index"])[columns]


def accuracy(rows: pd.DataFrame) -> pd.DataFrame:
    """Per model (in model order): labelled images, accuracy (NaN without labels) with
    its bootstrap interval, and the mean probability of the prediction."""
    images = per_image(rows)
    out = []
    for (index, model), group in images.groupby(["model_index", "model"], sort=True):
        labelled = group["correct"].dropna().astype(float).to_numpy()
        mean, low, high = bootstrap_ci(labelled, seed=int(index))
        out.append({"model_index": index, "model": model, "images": len(group), "labelled": labelled.size,
                    "accuracy": mean, "accuracy_low": low, "accuracy_high": high,
                    "mean_probability": float(group["probability"].mean())})
    return pd.DataFrame(out, columns=["model_index", "model", "images", "labelled", "accuracy", "accuracy_low",
                                      "accuracy_high", "mean_probability"])


def score_by(rows: pd.DataFrame, column: str, by: list[str], seed: int = 0) -> pd.DataFrame:
    """Mean of a score column and its bootstrap interval per group (`by` columns kept,
    groups in sorted order), with the number of images that have a score."""
    out = []
    for key, group in rows.groupby(by, sort=True, dropna=False):
        values = group[column].to_numpy(dtype=np.float64)
        mean, low, high = bootstrap_ci(values, seed=seed)
        out.append(
            {
                **dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True)),
                "n": int(np.isfinite(values).sum()),
                "mean": mean,
                "low": low,
                "high": high,
            }
        )
    return pd.DataFrame(out, columns=[*by, "n", "mean", "low", "high"])


def leaderboard(
    rows: pd.DataFrame, columns: Mapping[str, bool | None], rank_by: str, method_order: list[str], seed: int = 0
) -> pd.DataFrame:
    """Per method: each score's mean with its 95 % interval; `columns` maps score
    column -> higher is better. Ranked by `rank_by` in its direction (1 = best)."""
    table = pd.DataFrame({"method": method_order}).set_index("method")
    for column in columns:
        stats = score_by(rows, column, ["method"], seed).set_index("method")
        table[f"{column} mean"] = stats["mean"]
        table[f"{column} low"] = stats["low"]
        table[f"{column} high"] = stats["high"]
        table[f"{column} n"] = stats["n"]
    table = table.dropna(how="all", subset=[f"{c} mean" for c in columns])
    ascending = columns[rank_by] is False  # no direction (agreement): the highest first
    table["rank"] = table[f"{rank_by} mean"].rank(ascending=ascending, method="min")
    return table.sort_values(["rank"], kind="stable")


def per_class(rows: pd.DataFrame, column: str, seed: int = 0) -> pd.DataFrame:
    """Mean score per labelled class (rows) and method (columns), with each class's
    image count and accuracy (one model's rows)."""
    labelled = rows[rows["label"].notna()]
    if labelled.empty:
        return pd.DataFrame()
    means = labelled.pivot_table(index="label", columns="method", values=column, aggfunc="mean", sort=True)
    images = per_image(labelled)
    summary = images.groupby("label", sort=True).agg(images=("image_index", "size"),
                                                     accuracy=("correct", lambda c: c.dropna().astype(float).mean()))
    return summary.join(means)


def worst(rows: pd.DataFrame, column: str, higher_is_better: bool | None, k: int) -> pd.DataFrame:
    """Per method, the `k` images with the worst score (ties: lower image index first);
    for a score with no direction (agreement), the lowest."""
    scored = rows[np.isfinite(rows[column].to_numpy(dtype=np.float64))]
    ordered = scored.sort_values(
        [column, "image_index"], ascending=[higher_is_better is not False, True], kind="stable"
    )
    return ordered.groupby("method", sort=False).head(k)
