"""The pixel-perturbation substrates: what each one is in pixel values, and that deletion
and IROF end on the fully substituted image whichever is chosen."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explain.methods.registry import MethodSpec
from explain.metrics import SUBSTRATES, MetricInput, deletion_insertion, get_metric
from explain.metrics.substrates import make_substrate
from tests.synthetic import PatchCNN, bundle_of, patch_image

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def test_each_substrate_is_what_its_name_says_in_pixel_values() -> None:
    pixels = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    x = (pixels - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)

    def seen(substrate: str) -> torch.Tensor:
        mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
        return make_substrate(x, substrate, MEAN, STD) * std + mean

    torch.testing.assert_close(seen("black"), torch.zeros_like(x), atol=1e-6, rtol=0)
    torch.testing.assert_close(seen("grey"), torch.full_like(x, 0.5), atol=1e-6, rtol=0)
    torch.testing.assert_close(seen("zero"), torch.tensor(MEAN).view(1, 3, 1, 1).expand_as(x), atol=1e-6, rtol=0)
    torch.testing.assert_close(seen("mean"), pixels.mean(dim=(2, 3), keepdim=True).expand_as(x), atol=1e-6, rtol=0)
    noise = seen("noise")
    assert 0 <= float(noise.min()) and float(noise.max()) <= 1 and float(noise.std()) > 0.2  # uniform over [0, 1]
    torch.testing.assert_close(noise[0], noise[1])  # the same seeded noise for every image: batch mates do not matter
    torch.testing.assert_close(make_substrate(x[1:], "noise", MEAN, STD)[0], make_substrate(x, "noise", MEAN, STD)[1])
    with pytest.raises(ValueError, match="substrate"):
        make_substrate(x, "plasma")


@pytest.mark.parametrize("substrate", SUBSTRATES)
def test_deletion_and_irof_end_on_the_substituted_image(substrate: str) -> None:
    bundle = bundle_of(PatchCNN(), 16, 2, batch_size=64)
    x = torch.cat([patch_image(16, seed=s) for s in range(2)])
    maps = np.random.default_rng(0).random((2, 16, 16)).astype(np.float32)
    substituted = bundle.probabilities(make_substrate(x, substrate, bundle.mean, bundle.std))[:, 1].double().numpy()
    result = deletion_insertion(bundle, x, {"m": maps}, 1, substrate=substrate, steps=4)
    np.testing.assert_allclose(result.deletion["m"].curves[:, -1], substituted, atol=1e-6)
    irof = get_metric("irof")
    data = MetricInput(bundle, x, maps, torch.tensor([1, 1]), MethodSpec.of("saliency"))
    params = irof.resolve_params({"fill": substrate, "n_segments": 8})
    curves = irof.compute(data, params)["irof"]  # type: ignore[attr-defined]
    original = bundle.probabilities(x)[:, 1].double().numpy()
    np.testing.assert_allclose(curves.curves[:, -1], 1 - substituted / original, atol=1e-6)
