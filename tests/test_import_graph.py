"""Layers run one way (pages -> reports -> explain) and, inside explain, metrics below
plots below analyses: checked on the source with `ast`, following imports through
explain's own modules, so an import added inside a function is caught too."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.import_graph import forbidden_chains, import_graph

ROOT = Path(__file__).resolve().parents[1]
RULES = [
    ("explain", "reports"),
    ("explain", "streamlit"),
    ("explain", "pages"),
    ("explain.metrics", "explain.plots"),
    ("explain.plots", "explain.analyses"),
    ("reports", "streamlit"),
    ("reports", "pages"),
]


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    graph = import_graph(ROOT, "explain")
    graph.update(import_graph(ROOT, "reports"))
    return graph


@pytest.mark.parametrize("sources, forbidden", RULES, ids=[f"{s}-not-{f}" for s, f in RULES])
def test_layers_import_one_way(graph, sources, forbidden):
    chains = forbidden_chains(graph, sources, forbidden)
    assert not chains, "\n".join(" -> ".join(chain) for chain in chains)


def test_the_graph_has_every_module_and_sees_function_level_and_relative_imports(graph, tmp_path):
    assert "explain.analyses.metric" in graph and "explain.metrics.registry" in graph["explain.analyses.metric"]
    package = tmp_path / "pkg"
    (package / "low").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "low" / "__init__.py").write_text("from . import helper\n")
    (package / "low" / "helper.py").write_text("def f():\n    from ..high import view\n    return view\n")
    (package / "high.py").write_text("import streamlit\n")
    small = import_graph(tmp_path, "pkg")
    assert small["pkg.low.helper"] == {"pkg.high", "pkg.high.view"}
    assert forbidden_chains(small, "pkg.low", "pkg.high") == [
        ["pkg.low", "pkg.low.helper", "pkg.high"], ["pkg.low.helper", "pkg.high"],
    ]
    assert forbidden_chains(small, "pkg.low", "streamlit") == [
        ["pkg.low", "pkg.low.helper", "pkg.high", "streamlit"], ["pkg.low.helper", "pkg.high", "streamlit"],
    ]
