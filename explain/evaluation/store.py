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
"""

from __future__ import annotations

import io
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


class ResultsBusy(RuntimeError):
    """Another run is writing to this results directory now."""


class ResultsDir:
    """Reads and writes one results directory (see the module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

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
            raise ResultsBusy(f"another run is writing to {self.root} now") from None

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
        value = read_json(self.root / MANIFEST)
        return value if isinstance(value, dict) else None

    def done(self) -> set[tuple[int, int]]:
        """(model index, chunk) of every finished chunk."""
        if not self.root.is_dir():
            return set()
        found = set()
        for path in self.root.iterdir():
            match = _ROWS_NAME.match(path.name)
            if match:
                found.add((int(match.group(1)), int(match.group(2))))
        return found

    def rows(self, columns: Sequence[str] | None = None, filters: Any = None) -> pd.DataFrame:
        """The rows table (finished chunks only), in model, image, method order."""
        return pd.read_parquet(self.root, columns=list(columns) if columns else None, filters=filters)

    def curves(self, filters: Any = None) -> pd.DataFrame:
        folder = self.root / CURVES
        return pd.read_parquet(folder, filters=filters) if folder.is_dir() else pd.DataFrame()

    def chunk_maps(self, model_index: int, chunk: int) -> dict[str, np.ndarray] | None:
        """The maps (`map:<method>`), crops (`display`) and image positions of one chunk, if kept."""
        path = self.maps_path(model_index, chunk)
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError):
            return None


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def _once():
    """`should_stop` for a lock that must be free now: give up at the first refusal."""
    return lambda: True
