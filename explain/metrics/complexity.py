"""Complexity: how concise a map is, read off the map alone (no model pass, no ground
truth). Quantus's three complexity metrics (`quantus/metrics/complexity/`, v0.6.0),
with its definitions, each vectorised over the images of a batch, on |map| normalised
by its maximum:

- sparseness (Chalasani et al. 2020): the Gini index of |map|: 0 for a constant map, near
  1 when one pixel holds everything (higher: sparser);
- complexity (Bhatt et al. 2020): the entropy of |map| / sum |map|: log(H*W) for a constant
  map, 0 for a single pixel (lower: simpler);
- effective complexity (Nguyen & Martínez 2020): the pixels whose |map| exceeds `eps` of
  the map's maximum (lower: simpler). Quantus normalises by the batch's maximum, which
  makes an image's count depend on its batch mates; here each map is normalised alone
  (equal for a batch of one).

MST-C (Minimum Spanning Tree Compactness; Mesgari, Ma, Samek, Lapuschkin, Weber,
"Structural compactness as a complementary criterion for explanation quality",
arXiv:2603.29491, 2026) is left out because it is not well defined from what can be
read here: Quantus 0.6.0 does not have it, and the only stored text of the paper is its
abstract, which says what the score favours (salient points spread over a small area,
in few cohesive clusters: "spread" and "cohesion" read off a minimum spanning tree) but
not how: which points count as salient (a threshold, a top-k share), the edge weights
(Euclidean pixel distance or relevance too), how spread and cohesion are computed from
the tree and how they combine into one number, or its range and direction. Its code is
behind an anonymous review link that this offline machine cannot reach. A tree over
the salient pixels is easy to build (`scipy.sparse.csgraph.minimum_spanning_tree`); any
score built on it here would be our invention under the paper's name. Why in-house
(the three above): one vectorised line each, in the registry's shapes;
`tests/test_catalogue.py` checks them against Quantus.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..methods.registry import Param
from .map_scores import MapScore, register_map_score, value_info

COMPLEXITY_PAGE = "Complexity"


def sparseness(maps: np.ndarray, masks: np.ndarray | None, params: Mapping[str, Any]) -> np.ndarray:
    values = np.sort(maps + 1e-7, axis=1)  # Quantus's offset: a map of zeros is not 0/0
    n = values.shape[1]
    weights = 2 * np.arange(1, n + 1) - n - 1
    return (values * weights).sum(axis=1) / (n * values.sum(axis=1))


def complexity(maps: np.ndarray, masks: np.ndarray | None, params: Mapping[str, Any]) -> np.ndarray:
    shares = maps / np.abs(maps).sum(axis=1, keepdims=True)
    return -(shares * np.log(shares + 1e-12)).sum(axis=1)


def effective_complexity(maps: np.ndarray, masks: np.ndarray | None, params: Mapping[str, Any]) -> np.ndarray:
    return (maps > float(params["eps"])).sum(axis=1).astype(np.float64)


NGUYEN = "Nguyen, Martínez. On quantitative aspects of model interpretability. arXiv:2007.07584, 2020."
EPS = Param("eps", "Threshold (share of the maximum)", 1e-5, 0.0, 1.0, 1e-5,
            help="A pixel counts when |map| exceeds this share of the map's largest |value| (Quantus: eps=1e-5)")

# (key, name, function, higher is better, description, reference, parameters)
SCORES: tuple[tuple[str, str, MapScore, bool, str, str, tuple[Param, ...]], ...] = (
    ("sparseness", "Sparseness", sparseness, True,
     "Gini index of the absolute map: 0 when every pixel is equally relevant, near 1 when a few hold it all.",
     "Chalasani, Chen, Chowdhury, Wu, Jha. Concise explanations of neural networks using adversarial training. "
     "ICML 2020.", ()),
    ("complexity", "Complexity", complexity, False,
     "Entropy of the absolute map's shares: log(pixels) for a constant map, 0 for a single pixel.",
     "Bhatt, Weller, Moura. Evaluating and aggregating feature-based model explanations. IJCAI 2020.", ()),
    ("effective_complexity", "Effective complexity", effective_complexity, False,
     "Pixels whose absolute relevance exceeds a small share of the map's maximum.", NGUYEN, (EPS,)),
)

for _key, _name, _score, _higher, _description, _reference, _params in SCORES:
    register_map_score(
        value_info(_key, _name, _higher, _description, _reference),
        _score, label=_name, description=_description, absolute=True, page=COMPLEXITY_PAGE, needs_masks=False,
        params=_params)
