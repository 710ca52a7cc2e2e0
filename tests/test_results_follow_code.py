"""Stored results follow the code and the weights: method/metric versions in every key,
a digest of the whole weights as the model id, and a cache held under its bound."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from explain.analyses import AttributionMaps, MetricAnalysis, prepare_images
from explain.analyses import maps as maps_module
from explain.analyses.base import Analysis, register_analysis
from explain.evaluation.cli import main as explain_main
from explain.jobs import JobContext, JobRunner, JobStore
from explain.jobs.bound import scan
from explain.methods import registry as method_registry
from explain.methods.cache import default_cache
from explain.methods.registry import MethodSpec
from explain.metrics import registry as metric_registry
from explain.models.bundle import state_dict_digest
from tests.synthetic import PatchCNN, bundle_of
from tests.test_jobs import photos
from tests.patience import generous


def bumped(registry: dict, key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Register `key` again with its version raised by one (as a fix to its code would)."""
    monkeypatch.setitem(registry, key, dataclasses.replace(registry[key], version=registry[key].version + 1))


def test_a_method_version_bump_recomputes_its_stored_maps_and_reuses_the_others(tmp_path, monkeypatch):
    bundle = bundle_of(PatchCNN(), 32, 2, cam_layer="features", linear_head="fc")
    prepared = prepare_images(bundle, photos()[:3])
    specs = (MethodSpec.of("gradcam"), MethodSpec.of("saliency"))
    default_cache().clear()  # maps another test left in memory would not reach this store
    first = JobRunner(JobStore(tmp_path)).submit(AttributionMaps(prepared.subject(), specs), prepared)
    assert first.wait(generous(12)) and first.state == "done", first.error
    default_cache().clear()  # as in a new process: only the disk remembers
    computed: list[str] = []
    original = maps_module.attribute
    def counted(b, x, method, *a, **k):  # type: ignore[no-untyped-def]
        computed.extend([method] * len(x))
        return original(b, x, method, *a, **k)

    monkeypatch.setattr(maps_module, "attribute", counted)
    bumped(method_registry._REGISTRY, "saliency", monkeypatch)
    analysis = AttributionMaps(prepared.subject(), specs)
    assert analysis.key != first.key  # the finished job is not served either
    again = JobRunner(JobStore(tmp_path)).submit(analysis, prepared)
    assert again.wait(generous(12)) and again.state == "done", again.error
    assert computed == ["saliency"] * 3  # Grad-CAM's maps came from the store
    np.testing.assert_array_equal(again.result.maps["gradcam"], first.result.maps["gradcam"])


def test_a_metric_version_bump_changes_only_the_analyses_of_that_metric():
    bundle = bundle_of(PatchCNN(), 32, 2, cam_layer="features", linear_head="fc")
    subject = prepare_images(bundle, photos()[:1]).subject()
    specs = (MethodSpec.of("gradcam"),)
    deletion = MetricAnalysis.of("deletion_insertion", subject, specs, {"steps": 4})
    irof = MetricAnalysis.of("irof", subject, specs)
    maps = AttributionMaps(subject, specs)
    before = (deletion.key, irof.key, maps.key)
    with pytest.MonkeyPatch.context() as patch:
        bumped(metric_registry._REGISTRY, "deletion_insertion", patch)
        after = (deletion.key, irof.key, maps.key)
    assert after[0] != before[0] and after[1:] == before[1:]


def test_state_dicts_differing_only_in_their_last_bytes_get_different_model_ids():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 2048), torch.nn.Linear(2048, 8))
    twin = torch.nn.Sequential(torch.nn.Linear(64, 2048), torch.nn.Linear(2048, 8))
    twin.load_state_dict(model.state_dict())
    assert state_dict_digest(twin) == state_dict_digest(model)
    with torch.no_grad():
        twin[0].weight.view(-1)[-1] += 1e-3  # the last element of a 512 KiB tensor
    assert state_dict_digest(twin) != state_dict_digest(model)
    with torch.no_grad():
        twin[0].weight.view(-1)[-1] -= 1e-3
        twin[1].bias[-1] = torch.nextafter(twin[1].bias[-1], torch.tensor(1.0))  # one ulp, the very last byte(s)
    assert state_dict_digest(twin) != state_dict_digest(model)


@dataclass(frozen=True)
class WriteInputs:
    part_bytes: int


@dataclass(frozen=True)
class CacheFiller(Analysis):
    """Writes `parts` shared parts of `part_bytes` each and, after each, measures the whole
    cache folder: what a long job filling the maps scope does, observed from inside it."""

    kind = "test_cache_filler"

    parts: int
    salt: str = ""

    def run(self, inputs: WriteInputs, ctx: JobContext) -> Iterator[tuple[int, ...]]:
        ctx.plan(self.parts, "parts")
        sizes = []
        scope = ctx.shared("maps")
        for i in range(self.parts):
            scope.put_arrays(f"fill-{self.salt}-{i}", {"map": np.ones(inputs.part_bytes // 4, np.float32)})
            ctx.parts.put_json(f"part-{i}", {"i": i})
            sizes.append(sum(e.size for e in scan(Path(ctx.parts.root).parents[2])))  # type: ignore[union-attr]
            ctx.advance(1)
        yield tuple(sizes)

    def load(self, ctx: JobContext) -> tuple[int, ...] | None:
        return None


register_analysis(CacheFiller)


def age(path: Path, seconds: float) -> None:
    for folder, _, files in os.walk(path):
        for name in files:
            then = time.time() - seconds
            os.utime(os.path.join(folder, name), (then, then))


def test_the_cache_stays_under_its_bound_while_a_long_job_runs(tmp_path, monkeypatch):
    bound = 2**20  # 1 MiB
    monkeypatch.setenv("EXPLAIN_CACHE_MAX_GB", str(bound / 2**30))
    store = JobStore(tmp_path)
    old = store.shared("maps")
    for i in range(30):  # 30 x 64 KiB of old maps: nearly twice the bound before the job starts
        old.put_arrays(f"old-{i}", {"map": np.zeros(16384, np.float32)})
    age(tmp_path, 3600)
    job = JobRunner(store).submit(CacheFiller(40), WriteInputs(16 * 1024))  # 640 KiB of its own
    assert job.wait(generous(30)) and job.state == "done", job.error
    assert max(job.result) <= bound
    names = {p.name for p in (tmp_path / "shared" / "maps").iterdir()}
    assert all(f"fill--{i}.npz" in names for i in range(40))  # the running job's parts were never evicted
    assert sum(e.size for e in scan(tmp_path)) <= bound


def test_the_cache_command_lists_sizes_by_kind_and_clears(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EXPLAIN_CACHE_DIR", str(tmp_path))
    store = JobStore(tmp_path)
    store.shared("maps").put_arrays("m", {"map": np.zeros(1000, np.float32)})
    store.shared("roar-x").put_json("entry", {"accuracy": 0.5})
    store.write_record("ab" * 12, {"state": "done"})
    (tmp_path / "jobs" / ("cd" * 12)).mkdir(parents=True)
    (tmp_path / "jobs" / ("cd" * 12) / "job.json").write_text('{"state": "done"}')  # an older store format
    assert explain_main(["cache"]) == 0
    listing = capsys.readouterr().out
    assert "maps" in listing and "shared" in listing and "jobs" in listing and "total" in listing
    assert explain_main(["cache", "prune"]) == 0
    assert "1 jobs of older store formats" in capsys.readouterr().out
    assert not (tmp_path / "jobs" / ("cd" * 12)).exists() and (tmp_path / "jobs" / ("ab" * 12)).exists()
    assert explain_main(["cache", "clear", "--kind", "maps"]) == 0
    assert not any((tmp_path / "shared" / "maps").iterdir()) and (tmp_path / "shared" / "roar-x").is_dir()
    assert explain_main(["cache", "clear"]) == 0
    assert sum(e.size for e in scan(tmp_path)) == 0
