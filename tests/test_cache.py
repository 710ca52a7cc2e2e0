"""The attribution cache returns the same maps without recomputing."""

from __future__ import annotations

import numpy as np
import torch

import explain
from tests.synthetic import LinearClassifier, bundle_of


def test_cached_attribute_computes_only_missing_images():
    bundle = bundle_of(LinearClassifier((3, 8, 8), 4), 8, 4)
    cache = explain.AttributionCache()
    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    digests = ["a", "b", "c"]
    first = explain.cached_attribute(cache, bundle, x, digests, "smoothgrad", 1, n_samples=4)
    assert len(cache) == 3 and cache.hits == 0
    np.testing.assert_array_equal(first, explain.attribute(bundle, x, "smoothgrad", 1, n_samples=4))
    calls = []
    again = explain.cached_attribute(cache, bundle, x[:2], digests[:2], "smoothgrad", 1, n_samples=4,
                                     progress=lambda done, total: calls.append((done, total)))
    np.testing.assert_array_equal(again, first[:2])
    assert cache.hits == 2 and calls == [(2, 2)]
    # Other settings or another class are other entries; defaults spelled out are the same entry.
    explain.cached_attribute(cache, bundle, x[:1], digests[:1], "smoothgrad", 1, n_samples=8)
    explain.cached_attribute(cache, bundle, x[:1], digests[:1], "smoothgrad", 2, n_samples=4)
    assert len(cache) == 5
    explain.cached_attribute(cache, bundle, x[:1], digests[:1], "smoothgrad", 1, n_samples=4, noise_level=0.15)
    assert len(cache) == 5


def test_cache_is_bounded_in_bytes():
    cache = explain.AttributionCache(max_bytes=3 * 64 * 4)
    for i in range(10):
        cache.put(i, np.zeros((8, 8), np.float32))
    assert len(cache) == 3 and cache.get(9) is not None and cache.get(0) is None


def test_top1_hit_runs_no_model():
    """With target=None a full hit needs each image's top-1: it comes from the prediction
    cache, so no forward pass runs (counted by a forward hook)."""
    from explain.methods.cache import predictions

    bundle = bundle_of(LinearClassifier((3, 8, 8), 4, seed=3), 8, 4)
    cache = explain.AttributionCache()
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    digests = ["top1-a", "top1-b", "top1-c", "top1-d"]
    calls = []
    handle = bundle.model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    try:
        first = explain.cached_attribute(cache, bundle, x, digests, "saliency")
        computed = len(calls)
        again = explain.cached_attribute(cache, bundle, x, digests, "saliency")
        assert len(calls) == computed and cache.hits == 4
        # A new image among known ones: only it goes through the model for its class.
        y = torch.cat([x[:1], torch.randn(1, 3, 8, 8)])
        explain.cached_attribute(cache, bundle, y, ["top1-a", "top1-e"], "saliency")
        assert calls[computed] == 1
    finally:
        handle.remove()
    np.testing.assert_array_equal(again, first)
    top1 = bundle.logits(x).argmax(1).tolist()
    assert predictions.top1(bundle, x, digests) == top1
    np.testing.assert_array_equal(first, explain.attribute(bundle, x, "saliency", top1))


def test_predictions_are_per_model_and_bounded():
    from explain.methods.cache import PredictionCache

    one = bundle_of(LinearClassifier((3, 8, 8), 4, seed=0), 8, 4)
    two = bundle_of(LinearClassifier((3, 8, 8), 4, seed=1), 8, 4)
    x = torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    cache = PredictionCache(max_entries=4)
    assert one.model_id != two.model_id
    assert cache.top1(one, x[:2], ["p", "q"]) == one.logits(x[:2]).argmax(1).tolist()
    assert cache.top1(two, x[:2], ["p", "q"]) == two.logits(x[:2]).argmax(1).tolist()
    cache.top1(one, x[2:6], ["r", "s", "t", "u"])
    assert len(cache) == 4
