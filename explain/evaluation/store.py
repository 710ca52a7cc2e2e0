"""The results directory of an evaluation: Parquet parts written atomically, chunk by chunk.

    DIR/rows-m0000-c000000.parquet     one row per model x image x method (the main table)
    DIR/_curves/curves-m0000-c000000.parquet   each score's curve per model x image x method
    DIR/_maps/maps-m0000-c000000.npz   maps and crops, when kept (compressed)
    DIR/_manifest.json                 settings, versions, models, timings, state
    DIR/.lock                          held by the run writing here

Every part is one file written to a temporary name and renamed (`explain.storage`), the
rows part of a chunk last: a chunk is done when its rows file exists, so a killed run
leaves whole parts only and a rerun recomputes exactly the chunks without one (their
curves and maps, if written, are overwritten with the same values: never duplicated).
Readers skip names starting with `_` or `.` (the Parquet convention, as pyarrow's
dataset discovery does), so `pandas.read_parquet(DIR)` reads the rows table at any
moment, also during a run or after one was killed, and `pandas.read_parquet(DIR /
"_curves")` the curves.

A results folder is untrusted input (it may come from another machine, or be edited by
hand): this module is the one place that validates it, and every reader (the Benchmark
page, the report sections, comparisons) reads through it. The manifest is checked
against a schema (`validate_manifest`) before use; a part counts only when it is a
regular file that resolves inside the folder (no symlink out of it) and whose Parquet
footer and columns read back, so a truncated or foreign part is not "done" and a
rerun recomputes it; a folder that holds parts but no usable manifest is refused
(`ResultsError`), never appended to.
"""

from __future__ import annotations

import io
import math
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..storage import LockWaitCancelled, atomic_write, file_lock, read_json, write_json
from .compute import ChunkResult

MANIFEST = "_manifest.json"
CURVES = "_curves"
MAPS = "_maps"
_ROWS_NAME = re.compile(r"^rows-m(\d{4})-c(\d{6})\.parquet$")
_ROW_KEYS = {"model_index": pa.int32(), "image_index": pa.int64(), "method": pa.string()}
_CURVE_KEYS = {"model_index": pa.int32(), "score": pa.string()}
MAX_CHUNK_SIZE = 100_000


class ResultsBusy(RuntimeError):
    """Another run is writing to this results directory now."""


class ResultsError(ValueError):
    """A results folder that cannot be used as it is; the message says why and how to go on
    (it names the folder by its last component only: no server path reaches a visitor)."""


def _is_int(value: Any, low: int, high: int | None = None) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low and (high is None or value <= high)


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 10_000


def _records(manifest: dict[str, Any], key: str, fields: dict[str, Any], *, required: bool) -> str | None:
    """A problem with the list of records `manifest[key]` (each a dict whose `fields`
    pass their checks), or None."""
    items = manifest.get(key)
    if not isinstance(items, list) or (required and not items):
        return f"'{key}' must be a non-empty list" if required else f"'{key}' must be a list"
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            return f"'{key}[{i}]' must be an object"
        for name, check in fields.items():
            if not check(item.get(name)):
                return f"'{key}[{i}].{name}' is missing or of the wrong type"
    return None


def manifest_problem(manifest: Any) -> str | None:
    """What makes `manifest` unusable (types, ranges, the settings key), or None when
    every field a reader uses is present and sound."""
    if not isinstance(manifest, dict):
        return "the manifest is not a JSON object"
    if manifest.get("kind") != "evaluation":
        return "the manifest is not an evaluation's"
    checks: dict[str, Any] = {
        "key": lambda v: isinstance(v, str) and re.fullmatch(r"[0-9a-f]{8,64}", v) is not None,
        "settings": lambda v: isinstance(v, dict),
        "title": _is_text,
        "chunk_size": lambda v: _is_int(v, 1, MAX_CHUNK_SIZE),
        "chunks": lambda v: _is_int(v, 0, 10**7),
        "images": lambda v: _is_int(v, 0, 10**9),
    }
    for name, check in checks.items():
        if not check(manifest.get(name)):
            return f"'{name}' is missing or out of range"
    if manifest["chunks"] != math.ceil(manifest["images"] / manifest["chunk_size"]):
        return "'chunks' does not match 'images' and 'chunk_size'"
    problem = (_records(manifest, "models", {"label": _is_text}, required=True)
               or _records(manifest, "methods", {"ident": _is_text, "label": _is_text, "key": _is_text,
                                                 "params": lambda v: isinstance(v, dict)}, required=True)
               or _records(manifest, "scores", {"key": _is_text, "name": _is_text,
                                                "column": lambda v: _is_text(v) and v.startswith("auc_"),
                                                "higher_is_better": lambda v: v is None or isinstance(v, bool)},
                           required=True))
    if problem:
        return problem
    data = manifest.get("data")
    if not isinstance(data, dict) or not _is_text(data.get("label", "")):
        return "'data' must be an object with a text 'label'"
    if not isinstance(manifest.get("notes", []), list) or not all(_is_text(n) for n in manifest.get("notes", [])):
        return "'notes' must be a list of texts"
    if not _is_int(manifest.get("notes_total", 0), 0) or not _is_text(manifest.get("state", "")):
        return "'notes_total' or 'state' is of the wrong type"
    return None


class ResultsDir:
    """Reads and writes one results directory (see the module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def name(self) -> str:
        """The folder's last component: how messages name it (never the server path)."""
        return self.root.name or "the results folder"

    @staticmethod
    def part(model_index: int, chunk: int) -> str:
        return f"m{model_index:04d}-c{chunk:06d}"

    def rows_path(self, model_index: int, chunk: int) -> Path:
        return self.root / f"rows-{self.part(model_index, chunk)}.parquet"

    def curves_path(self, model_index: int, chunk: int) -> Path:
        return self.root / CURVES / f"curves-{self.part(model_index, chunk)}.parquet"

    def maps_path(self, model_index: int, chunk: int) -> Path:
        return self.root / MAPS / f"maps-{self.part(model_index, chunk)}.npz"

    # ------------------------------------------------------------------ writing
    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the directory's lock for a run; `ResultsBusy` when another holds it."""
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            with file_lock(self.root / ".lock", should_stop=_once(), poll=0.0):
                yield
        except LockWaitCancelled:
            raise ResultsBusy(f"another run is writing to {self.name} now; wait for it to finish (its finished chunks "
                              "are kept), or choose another results folder") from None

    def write_chunk(self, result: ChunkResult) -> None:
        """A chunk's maps, curves, then rows (the rows file marks the chunk done)."""
        m, c = result.model_index, result.chunk
        if result.maps is not None:
            buffer = io.BytesIO()
            named: dict[str, Any] = dict(result.maps)  # names of arrays, never numpy's own keywords
            np.savez_compressed(buffer, **named)
            atomic_write(self.maps_path(m, c), buffer.getvalue())
        atomic_write(self.curves_path(m, c), _parquet_bytes(result.curves))
        atomic_write(self.rows_path(m, c), _parquet_bytes(result.rows))

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        write_json(self.root / MANIFEST, manifest)

    # ------------------------------------------------------------------ reading
    def manifest(self) -> dict[str, Any] | None:
        """The validated manifest, or None when there is none; `ResultsError` when one
        is there but unreadable or fails the schema (see `manifest_problem`)."""
        path = self.root / MANIFEST
        if not path.exists() and not path.is_symlink():
            return None
        value = read_json(path) if self.inside(path) else None
        problem = "it is unreadable" if value is None else manifest_problem(value)
        if problem:
            raise ResultsError(f"{self.name}: its manifest ({MANIFEST}) cannot be used: {problem}. Nothing was read "
                               "from it; rerun the evaluation into another results folder.")
        return value

    def manifest_for_writing(self) -> dict[str, Any] | None:
        """The manifest a run may go on from: None for a new (or empty) folder; `ResultsError`
        when the folder holds parts but no usable manifest (a run never mixes its rows
        with a run of unknown settings)."""
        try:
            manifest = self.manifest()
        except ResultsError:
            manifest = None
        if manifest is None and self.holds_parts():
            raise ResultsError(f"{self.name} holds parts of an earlier run but no usable manifest ({MANIFEST} is "
                               "missing, empty or damaged), so nothing says which settings wrote them. It was left as "
                               "it is; "
                               "choose another results folder (or delete this one to start over).")
        return manifest

    def holds_parts(self) -> bool:
        """Whether any part file (rows, curves or maps) is in the folder."""
        folders = [self.root, self.root / CURVES, self.root / MAPS]
        return any(p.name.endswith((".parquet", ".npz")) for f in folders if f.is_dir() for p in f.iterdir())

    def inside(self, path: Path) -> bool:
        """Whether `path`, symlinks resolved, lies inside this folder (symlinks resolved too)."""
        try:
            return path.resolve().is_relative_to(self.root.resolve())
        except (OSError, RuntimeError):  # a symlink loop
            return False

    def done(self) -> set[tuple[int, int]]:
        """(model index, chunk) of every finished chunk: its rows part reads back."""
        return set(self._rows_parts())

    def _rows_parts(self) -> dict[tuple[int, int], Path]:
        """Rows parts that count, by (model index, chunk): regular files inside the folder
        whose Parquet footer reads and holds the key columns; anything else is left out
        (a rerun recomputes it)."""
        if not self.root.is_dir():
            return {}
        found = {}
        for path in sorted(self.root.iterdir()):
            match = _ROWS_NAME.match(path.name)
            if match and self._readable_part(path, _ROW_KEYS):
                found[(int(match.group(1)), int(match.group(2)))] = path
        return found

    def _readable_part(self, path: Path, keys: dict[str, pa.DataType]) -> bool:
        """A regular file inside the folder whose Parquet footer reads and whose key columns have their types."""
        if not self.inside(path) or not path.is_file():
            return False
        try:
            schema = pq.read_schema(path)
        except (OSError, ValueError, pa.ArrowException):
            return False
        return all(name in schema.names and schema.field(name).type == kind for name, kind in keys.items())

    def rows(self, columns: Sequence[str] | None = None, filters: Any = None) -> pd.DataFrame:
        """The rows table (finished chunks only), in model, image, method order."""
        return _read_parts(list(self._rows_parts().values()), columns, filters)

    def curves(self, filters: Any = None) -> pd.DataFrame:
        folder = self.root / CURVES
        parts = [p for p in sorted(folder.iterdir()) if p.suffix == ".parquet" and not p.name.startswith(".")
                 and self._readable_part(p, _CURVE_KEYS)] if folder.is_dir() else []
        return _read_parts(parts, None, filters)

    def chunk_maps(self, model_index: int, chunk: int) -> dict[str, np.ndarray] | None:
        """The maps (`map:<method>`), crops (`display`) and image positions of one chunk, if kept."""
        path = self.maps_path(model_index, chunk)
        if not self.inside(path):
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError):
            return None


def _read_parts(parts: list[Path], columns: Sequence[str] | None, filters: Any) -> pd.DataFrame:
    """The parts (already checked) as one table; an empty table when there is none."""
    if not parts:
        return pd.DataFrame(columns=list(columns) if columns else None)
    dataset = pq.ParquetDataset([str(p) for p in parts], filters=filters)
    return dataset.read(columns=list(columns) if columns else None).to_pandas()


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def _once():
    """`should_stop` for a lock that must be free now: give up at the first refusal."""
    return lambda: True
