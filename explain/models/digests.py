"""The sha256 of a whole weights file, read in blocks (a model card's weights digest)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

BLOCK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of the file's whole content, streamed block by block (never all in memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def sha256_files(paths: Sequence[str | os.PathLike]) -> str:
    """One digest for a model made of several files (a Hugging Face folder): the sha256 of
    the files' names and digests, in the order given."""
    h = hashlib.sha256()
    for path in paths:
        h.update(f"{os.path.basename(path)}:{sha256_file(path)}\n".encode())
    return h.hexdigest()
