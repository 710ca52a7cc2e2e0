"""Model parameter randomisation (Adebayo et al., NeurIPS 2018, "Sanity checks for
saliency maps"): if a map explains the model, re-initialising the model's weights must
change it. Each step re-initialises some layers of a *copy* of the model and recomputes
the map of the same class with the same method; the curve is the similarity of each
recomputed map to the trained model's map (`similarity.SIMILARITIES`) against the layers
randomised, starting at the trained model (x = 0, similarity 1).

- Cascading: layers are re-initialised from the logits down, each step adding the next
  group, until the whole network is random.
- Independent: each step re-initialises one group alone, the rest keeps its trained
  weights.

Layers: the modules with parameters of their own, in the order the forward pass runs
them (traced with hooks on one image; modules it never runs are left out; TorchScript,
which takes no hooks, in declaration order), a normalisation layer (BatchNorm, LayerNorm,
GroupNorm) joined to the layer it follows: EfficientNet-Lite0 has 50 (49 convolutions
with their BatchNorm, and the classifier). At most `max_steps` steps (default 8) keep a
CPU run affordable: the cut points are spaced evenly over the layers counted from the
output, the first always the output layer alone (Adebayo's "logits" step), the last the
whole network (cascading) or the input layer's group (independent); with `max_steps` at
least the number of layers, every step is one layer, as in the paper. x is the fraction
of the layers randomised (cascading) or the depth of the group's deepest layer as a
fraction of the layers (independent); `Curves.x_labels` name that layer.

Re-initialisation: PyTorch's defaults (`explain.models.reinit`), each layer from its own
generator seeded by (seed, its index), so a layer gets the same random weights in both
orders and whatever the cut points. The cached model is never touched: the copy is made
under the bundle's lock (no other session's hooks on it) and has a lock of its own. The
score is the area under the similarity curve over [0, 1]: lower is better (the map
depends on what the model learnt).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import numpy as np
import torch
from torch import nn

from ..methods.registry import Param, attribute, get_method
from ..models.bundle import ModelBundle, share_tensors
from ..models.model_lock import ModelLock
from ..models.reinit import reinitialise
from .base import Curves, MetricInfo
from .registry import Metric, MetricInput, Strip, register_metric
from .similarity import SIMILARITIES

ORDERS = ("cascading", "independent")
SANITY_PAGE = "Sanity checks"
ADEBAYO = "Adebayo, Gilmer, Muelly, Goodfellow, Hardt, Kim. Sanity checks for saliency maps. NeurIPS 2018."
NORMALISATION = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


@dataclass(frozen=True)
class Layer:
    """One randomisable layer: `modules` (names) re-initialised together, the first one
    the layer's own (a convolution, a linear layer...), then the normalisations after it."""

    modules: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.modules[0]


@dataclass(frozen=True)
class Step:
    """One randomisation step: the layers re-initialised (indices in forward order), its
    x (fraction of the layers, see the module docstring) and the name of its deepest layer."""

    layers: tuple[int, ...]
    x: float
    label: str


def _has_own_parameters(module: nn.Module) -> bool:
    return next(module.parameters(recurse=False), None) is not None


def forward_order(model: nn.Module, example: torch.Tensor) -> list[str]:
    """Names of the modules with parameters of their own, in the order one forward pass
    of `example` first runs them; declaration order when the model takes no hooks."""
    names = {module: name for name, module in model.named_modules() if _has_own_parameters(module)}
    seen: list[str] = []
    handles = []
    try:
        for module, name in names.items():
            handles.append(module.register_forward_hook(lambda m, i, o, name=name: seen.append(name)))
    except (RuntimeError, AttributeError, NotImplementedError):  # TorchScript modules take no hooks
        for handle in handles:
            handle.remove()
        return list(names.values())
    try:
        with torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    return list(dict.fromkeys(seen))


def group_layers(model: nn.Module, names: list[str]) -> list[Layer]:
    """Each normalisation module joins the layer it follows (see the module docstring)."""
    layers: list[list[str]] = []
    for name in names:
        if layers and isinstance(model.get_submodule(name), NORMALISATION):
            layers[-1].append(name)
        else:
            layers.append([name])
    return [Layer(tuple(names)) for names in layers]


def plan_steps(layers: list[Layer], order: str, max_steps: int) -> list[Step]:
    """The steps of a run (see the module docstring): cut points over the layers counted
    from the output, the first the output layer alone."""
    if order not in ORDERS:
        raise ValueError(f"randomisation order must be one of {ORDERS}, not {order!r}")
    n = len(layers)
    if n == 0:
        raise ValueError("the model has no layers with parameters to randomise")
    cuts = sorted({int(c) for c in np.round(np.linspace(1, n, min(max_steps, n)))})
    steps, start = [], 0
    for cut in cuts:
        from_top = range(0, cut) if order == "cascading" else range(start, cut)
        indices = tuple(n - 1 - t for t in from_top)  # forward-order indices, output side first
        steps.append(Step(indices, cut / n, layers[n - cut].name))
        start = cut
    return steps


def layer_generator(seed: int, index: int) -> torch.Generator:
    """The generator layer `index` is re-drawn from: the same for a seed in every run."""
    state = np.random.SeedSequence([seed, index]).generate_state(1, np.uint32)[0]
    return torch.Generator().manual_seed(int(state))


def randomised_bundles(bundle: ModelBundle, example: torch.Tensor, order: str, max_steps: int,
                       seed: int) -> Iterator[tuple[Step, ModelBundle]]:
    """For each step, a bundle over a copy of the model with that step's layers
    re-initialised (cascading: on top of the earlier steps'; independent: the earlier
    step's layers restored first). One copy serves every step (its rectifier form, for the
    methods that see rectifiers, shares the copy's tensors); the cached model is only read,
    under its lock."""
    with bundle.lock:
        model = copy.deepcopy(bundle.model)
        rectifier = (
            None if bundle.rectifier_model is None else share_tensors(model, copy.deepcopy(bundle.rectifier_model))
        )
    layers = group_layers(model, forward_order(model, example.to(bundle.device, torch.float32)))
    steps = plan_steps(layers, order, max_steps)
    trained: dict[str, dict[str, torch.Tensor]] = {}  # independent: the trained state of the last step's modules
    for step in steps:
        with torch.no_grad():
            for name, state in trained.items():
                module = model.get_submodule(name)
                for attr, value in state.items():
                    getattr(module, attr).copy_(value)
        trained = {}
        for index in step.layers:
            for name in layers[index].modules:
                module = model.get_submodule(name)
                if order == "independent":
                    own = dict(module.named_parameters(recurse=False)) | dict(module.named_buffers(recurse=False))
                    trained[name] = {attr: value.detach().clone() for attr, value in own.items()}
                reinitialise(module, layer_generator(seed, index))
        model_id = f"{bundle.model_id}~{order}:{step.label}:seed{seed}"
        yield step, dataclasses.replace(bundle, model=model, rectifier_model=rectifier, model_id=model_id,
                                          lock=ModelLock())


def fully_randomised_bundle(bundle: ModelBundle, example: torch.Tensor, seed: int) -> ModelBundle:
    """A bundle over a copy of the model with every layer re-initialised: the last step of a
    cascading run (a layer's weights depend only on the seed and its index, so they are the
    same whatever the cut points)."""
    *_, (_, last) = randomised_bundles(bundle, example, "cascading", 2, seed)
    return last


def randomised_maps(data: MetricInput, params: Mapping[str, Any], order: str,
                    rows: slice = slice(None)) -> Iterator[tuple[Step, np.ndarray]]:
    """Each step and the maps of `data.method` for the images `rows` on that step's model
    (progress in model passes, through `data.progress`)."""
    spec = data.method
    get_method(spec.key)  # a metric recomputing maps needs the method itself
    images, targets = data.images[rows], data.targets[rows].tolist()
    per_map = data.passes_per_map
    total = int(params["max_steps"]) * len(targets) * per_map
    done = 0
    for step, random_bundle in randomised_bundles(
        data.bundle, images[:1], order, int(params["max_steps"]), int(params["seed"])
    ):

        def progress(finished: int, n: int, before: int = done) -> None:
            if data.progress is not None:
                data.progress(before + finished * per_map, total)

        yield step, attribute(random_bundle, images, spec.key, targets, progress=progress, **spec.resolved)
        done += len(targets) * per_map


def _infos(order: str) -> tuple[MetricInfo, ...]:
    title = order.capitalize()
    if order == "cascading":
        x_label = "fraction of layers randomised (from the logits down)"
        what = "as the model's layers are re-initialised from the logits down, one more group each step"
    else:
        x_label = "depth of the randomised layer group (fraction of layers, from the logits)"
        what = "when one group of layers is re-initialised, the others kept"
    return tuple(MetricInfo(
        key=f"{order}_{s.key}",
        name=f"{title}: {s.label}",
        higher_is_better=False,
        x_label=x_label,
        y_label=f"{s.label} to the trained model's map",
        description=f"{s.description.capitalize()} between the map of the trained model and the map {what}. "
                    "A map that explains the model loses its similarity (lower area is better).",
        reference=ADEBAYO,
    ) for s in SIMILARITIES)


INFOS = {order: _infos(order) for order in ORDERS}


def randomisation_curves(data: MetricInput, params: Mapping[str, Any], order: str) -> dict[str, Curves]:
    """Per similarity, one curve per image: 1 at the trained model, then each step's similarity."""
    n = data.images.shape[0]
    columns: list[dict[str, np.ndarray]] = []
    x, labels = [0.0], ["trained model"]
    for step, maps in randomised_maps(data, params, order):
        columns.append({s.key: np.array([s.compute(data.maps[i], maps[i]) for i in range(n)]) for s in SIMILARITIES})
        x.append(step.x)
        labels.append(step.label)
    out = {}
    for s, info in zip(SIMILARITIES, INFOS[order], strict=True):
        curves = np.column_stack([np.ones(n), *(column[s.key] for column in columns)])
        out[info.key] = Curves(info, data.method.ident, np.array(x), curves, x_labels=tuple(labels))
    return out


def randomisation_strip(data: MetricInput, params: Mapping[str, Any], index: int, order: str) -> Strip:
    """Image `index`'s map on the trained model and after each step (the figure of the
    paper), each map scaled to its own range."""
    picture = data.bundle.to_display(data.images[index : index + 1])[0]
    maps, captions = [np.asarray(data.maps[index])], ["trained model"]
    quiet = dataclasses.replace(data, progress=None)
    for step, randomised in randomised_maps(quiet, params, order, slice(index, index + 1)):
        maps.append(np.asarray(randomised[0]))
        captions.append(("up to " if order == "cascading" else "only ") + step.label)
    return Strip(
        np.stack([picture] * len(maps)),
        tuple(captions),
        maps=np.stack(maps),
        note=f"{data.method.label}: |map| of each model, each scaled to its own range; layers named by the deepest "
             "one randomised.",
    )


PARAMS = (
    Param("max_steps", "Randomisation steps (at most)", 8, 1, 400, 1,
          help="Cut points spaced evenly over the layers from the output; as many as the layers: one layer per step"),
    Param("seed", "Random seed", 0, 0, 2**31 - 1, 1, help="Seeds the re-initialised weights"),
)


def _register(order: str) -> None:
    register_metric(Metric(
        key=f"{order}_randomisation",
        label=f"{order.capitalize()} randomisation",
        scores=INFOS[order],
        compute=lambda data, params: randomisation_curves(data, params, order),
        description=(
            "Layers of a copy of the model are re-initialised "
            + ("from the logits down, one more group each step" if order == "cascading" else "one group at a time")
            + ", and each map recomputed for the same class; y = its similarity to the trained model's map. "
            "A map that barely changes explains the image, not the model."
        ),
        params=PARAMS,
        passes=lambda params, n: 0,
        maps_per_image=lambda params: int(params["max_steps"]),
        detail=lambda data, params, i: randomisation_strip(data, params, i, order),
        detail_title="The map as the layers are randomised",
        page=SANITY_PAGE,
    ))


for _order in ORDERS:
    _register(_order)
