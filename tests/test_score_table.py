"""The score table the metric pages, ROAR and reports share: a standard error only where one exists."""

from __future__ import annotations

import numpy as np
import pytest

from explain.metrics.base import Curves, MetricInfo
from explain.plots.curves import score_table

INFO = MetricInfo("toy", "Toy score", True, "x", "y", "a toy value per image", "none", score="mean_value")


def per_image(values: list[float]) -> Curves:
    kept = tuple(range(len(values)))
    return Curves(INFO, "saliency", np.zeros(1), np.asarray(values, dtype=float)[:, None], kept=kept, skipped=())


def test_one_image_has_no_standard_error_column():
    table = score_table({"toy": {"saliency": per_image([0.4])}}, {"saliency": "Saliency"})
    assert list(table.columns) == ["Toy score"]
    assert table.loc["Saliency", "Toy score"] == pytest.approx(0.4)


def test_two_images_give_the_standard_error_of_their_mean():
    table = score_table({"toy": {"saliency": per_image([0.2, 0.6]), "gradcam": per_image([0.5])}},
                        {"saliency": "Saliency", "gradcam": "Grad-CAM"})
    assert list(table.columns) == ["Toy score", "Toy score s.e."]
    assert table.loc["Saliency", "Toy score s.e."] == pytest.approx(np.std([0.2, 0.6], ddof=1) / np.sqrt(2))
    assert np.isnan(table.loc["Grad-CAM", "Toy score s.e."])  # its one image: blank beside a real one
