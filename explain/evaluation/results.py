"""A results directory read back: what the Benchmark page shows and what its report
section holds. Opens any directory an evaluation wrote (by the app, the CLI or on a
cluster), finished or not; every number comes from the rows table through
`summary`, every figure from `explain.plots.benchmark`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..metrics.base import direction_text
from .store import MANIFEST, ResultsDir, ResultsError
from . import summary


@dataclass(frozen=True)
class Score:
    """A score column of the rows table (`auc_<key>`), named and directed as its metric says."""

    key: str
    name: str
    column: str
    higher_is_better: bool | None  # None: neither direction is better (method agreement)
    description: str = ""

    @property
    def direction(self) -> str:
        return direction_text(self.higher_is_better)

    @property
    def arrow(self) -> str:
        return {True: " (↑)", False: " (↓)", None: ""}[self.higher_is_better]


PATH_IN_TEXT = re.compile(r"(?<![^\s:(\['\"=])(?:~|[A-Za-z]:|\.{1,2})?(?:[\\/][^\\/\s]+)+[\\/]?")


def without_paths(text: str) -> str:
    """`text` with every absolute server path in it (`/srv/data/cats`, `~/runs/a`,
    `C:\\data\\x`) cut to its last part (`cats`): labels and titles come from manifests,
    which an older version, another tool or a hand edit may have written with paths,
    and no server path may reach a visitor."""
    return PATH_IN_TEXT.sub(lambda match: re.split(r"[\\/]", match.group(0).rstrip("\\/"))[-1], text)


@dataclass(frozen=True, eq=False)
class EvaluationResult:
    root: Path
    manifest: Mapping[str, Any]

    @classmethod
    def open(cls, root: str | Path) -> "EvaluationResult":
        """The results in `root`; `ResultsError` (a ValueError naming the folder by its last
        component only) when it holds no evaluation or its manifest fails validation."""
        store = ResultsDir(root)
        manifest = store.manifest()
        if manifest is None:
            raise ResultsError(f"{store.name}: not a results folder of an evaluation (no {MANIFEST})")
        return cls(Path(root), manifest)

    @property
    def store(self) -> ResultsDir:
        return ResultsDir(self.root)

    @property
    def total_chunks(self) -> int:
        return int(self.manifest.get("chunks", 0)) * len(self.manifest.get("models", []))

    @cached_property
    def done_chunks(self) -> int:
        return len(self.store.done())

    @property
    def complete(self) -> bool:
        return self.manifest.get("state") == "complete" and self.done_chunks >= self.total_chunks

    @property
    def title(self) -> str:
        """The run's title, as a visitor may see it (any server path in it cut to its last part)."""
        return without_paths(str(self.manifest.get("title", self.root.name)))

    @property
    def data_label(self) -> str:
        """The data's label, as a visitor may see it (its folder's name, never its path)."""
        data = self.manifest.get("data")
        return without_paths(str(data.get("label", ""))) if isinstance(data, dict) else ""

    @property
    def models(self) -> list[str]:
        """The models' labels, as a visitor may see them (no server path)."""
        return [without_paths(str(m["label"])) for m in self.manifest.get("models", [])]

    @property
    def labels(self) -> dict[str, str]:
        """Method ident -> label, in the settings' order."""
        return {m["ident"]: m["label"] for m in self.manifest.get("methods", [])}

    @property
    def scores(self) -> list[Score]:
        from ..metrics.registry import score_infos

        known = score_infos()
        out = []
        for s in self.manifest["scores"]:  # validated: each has key, name, column and direction
            info = known.get(s["key"])
            out.append(
                Score(
                    s["key"],
                    s["name"],
                    s["column"],
                    None if s["higher_is_better"] is None else bool(s["higher_is_better"]),
                    info.description if info else "",
                )
            )
        return out

    def score(self, key: str | None = None) -> Score:
        scores = self.scores
        return next((s for s in scores if s.key == key), scores[0])

    @cached_property
    def rows(self) -> pd.DataFrame:
        """The rows table (finished chunks), with the method labels as `method` values'
        companions (`method_label`)."""
        rows = self.store.rows()
        for column in [s.column for s in self.scores]:  # a part written without one of the manifest's scores
            if column not in rows.columns:
                rows[column] = np.nan
        return rows

    # ------------------------------------------------------------------ numbers
    def accuracy(self) -> pd.DataFrame:
        return summary.accuracy(self.rows)

    def model_rows(self, model_index: int | None) -> pd.DataFrame:
        rows = self.rows
        return rows if model_index is None else rows[rows["model_index"] == model_index]

    def leaderboard(self, score: Score, model_index: int | None = None, seed: int = 0) -> pd.DataFrame:
        """Per method (labels as index): each score's mean and 95 % interval, ranked by `score`."""
        rows = self.model_rows(model_index)
        columns = {s.column: s.higher_is_better for s in self.scores}
        present = [m for m in self.labels if m in set(rows["method"])]
        table = summary.leaderboard(rows, columns, score.column, present, seed)
        table.index = [self.labels.get(m, m) for m in table.index]
        table.index.name = "method"
        return table

    def leaderboard_display(self, score: Score, model_index: int | None = None, seed: int = 0) -> pd.DataFrame:
        """The leaderboard as text: rank, then per score "mean [low, high]"."""
        table = self.leaderboard(score, model_index, seed)
        shown = pd.DataFrame(index=table.index)
        shown["rank"] = table["rank"].astype(int)
        for s in self.scores:
            shown[f"{s.name}{s.arrow}"] = [
                _interval(m, lo, hi)
                for m, lo, hi in zip(
                    table[f"{s.column} mean"], table[f"{s.column} low"], table[f"{s.column} high"], strict=True
                )
            ]
        shown["images"] = table[f"{score.column} n"].astype(int)
        return shown

    def by_checkpoint(self, score: Score, seed: int = 0) -> pd.DataFrame:
        return summary.score_by(self.rows, score.column, ["model_index", "model", "method"], seed)

    def per_class(self, score: Score, model_index: int) -> pd.DataFrame:
        return summary.per_class(self.model_rows(model_index), score.column)

    def worst(self, score: Score, model_index: int, k: int = 4) -> list[tuple[str, list[dict[str, Any]]]]:
        """Per method (label), its `k` worst images on `model_index`: each a dict with the
        row's values, `picture` (the crop the model saw with the map over it) when the
        run kept maps, else None."""
        from ..plots.overlay import overlay

        rows = summary.worst(self.model_rows(model_index), score.column, score.higher_is_better, k)
        chunk_size = int(self.manifest.get("chunk_size", 1))
        cache: dict[int, dict | None] = {}
        out = []
        for method in [m for m in self.labels if m in set(rows["method"])]:
            items = []
            for row in rows[rows["method"] == method].to_dict("records"):
                chunk = int(row["image_index"]) // chunk_size
                if chunk not in cache:
                    cache[chunk] = self.store.chunk_maps(model_index, chunk)
                stored = cache[chunk]
                picture = None
                if stored is not None and f"map:{method}" in stored:
                    at = int(np.flatnonzero(stored["image_index"] == row["image_index"])[0])
                    crop = stored["display"][at]
                    crop = np.repeat(crop, 3, axis=-1) if crop.shape[-1] == 1 else crop
                    picture = overlay(crop, stored[f"map:{method}"][at])
                items.append({**row, "picture": picture})
            out.append((self.labels[method], items))
        return out

    # ------------------------------------------------------------------ figures
    def checkpoint_figure(self, score: Score):
        from ..plots.benchmark import checkpoint_figure

        return checkpoint_figure(
            self.by_checkpoint(score), self.accuracy(), self._present_labels(), score.name, score.direction
        )

    def class_figure(self, score: Score, model_index: int):
        from ..plots.benchmark import class_figure

        table = self.per_class(score, model_index)
        return (
            None
            if table.empty
            else class_figure(table, self._present_labels(), score.name, score.higher_is_better, score.direction)
        )

    def _present_labels(self) -> dict[str, str]:
        present = set(self.rows["method"]) if not self.rows.empty else set()
        return {m: label for m, label in self.labels.items() if m in present}


def _interval(mean: float, low: float, high: float) -> str:
    if not np.isfinite(mean):
        return "—"
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"{mean:.3f}"
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"
