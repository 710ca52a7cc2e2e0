"""Issue 24, break 4: a checkpoint glob naming a folder outside `data_roots` is refused
before anything in it is listed, read or hashed, and the refusal reads the same whether
or not the path exists (it tells nothing about what lies outside the roots)."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import pytest

from explain.data.datasets import DatasetError
from explain.evaluation import sources
from explain.evaluation.sources import model_sources


@pytest.fixture
def watched(monkeypatch) -> list[str]:
    """Every path the checkpoint lookup lists, hashes or stats as a file."""
    touched: list[str] = []
    real_glob, real_digest, real_isfile = glob.glob, sources.file_digest, os.path.isfile

    def listing(pattern, *args, **kwargs):
        touched.append(str(pattern))
        return real_glob(pattern, *args, **kwargs)

    def hashing(path, *args, **kwargs):
        touched.append(str(path))
        return real_digest(path, *args, **kwargs)

    def statting(path):
        touched.append(str(path))
        return real_isfile(path)

    monkeypatch.setattr(glob, "glob", listing)
    monkeypatch.setattr(sources, "file_digest", hashing)
    monkeypatch.setattr(os.path, "isfile", statting)
    return touched


def test_a_glob_outside_the_roots_is_refused_before_anything_is_read(tmp_path, watched):
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    allowed.mkdir(), outside.mkdir()
    for i in range(3):
        (outside / f"ckpt-{i}.pt").write_bytes(b"x" * 1000)
    with pytest.raises(DatasetError) as refused:
        model_sources(weights=[str(outside / "*.pt")], arch="small_cnn", roots=[allowed])
    assert not any(str(outside) in path for path in watched), watched
    assert "outside the folders this instance may read" in str(refused.value)


def test_the_refusal_reads_the_same_whether_or_not_the_path_exists(tmp_path, watched):
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    allowed.mkdir(), outside.mkdir()
    (outside / "secret.pt").write_bytes(b"x")
    messages = []
    for name in ("secret.pt", "nothing-here.pt", "*.pt"):
        typed = str(outside / name)
        with pytest.raises(DatasetError) as refused:
            model_sources(weights=[typed], arch="small_cnn", roots=[allowed])
        messages.append(str(refused.value).replace(typed, "PATH"))
    assert len(set(messages)) == 1, messages
    assert not any(str(outside) in path for path in watched), watched


def test_a_relative_escape_is_refused_too(tmp_path, watched):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (tmp_path / "secret.pt").write_bytes(b"x")
    with pytest.raises(DatasetError):
        model_sources(weights=["../*.pt"], arch="small_cnn", roots=[allowed])
    assert not any(Path(path).name == "secret.pt" for path in watched), watched
