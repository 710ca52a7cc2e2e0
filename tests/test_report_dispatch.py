"""`reports.build_section` picks the builder registered for a result's type."""

from __future__ import annotations

import pytest

from explain.analyses import AttributionResult, MetricResult, RoarResult, ShapSummaryResult
from explain.evaluation import EvaluationResult
from reports import build_section, dispatch, section_builder
from reports.sections import Section, gallery_section, metric_section


@pytest.fixture
def registry(monkeypatch):
    """A scratch copy of the registry: what a test registers disappears with it."""
    monkeypatch.setattr(dispatch, "SECTION_BUILDERS", dict(dispatch.SECTION_BUILDERS))
    return dispatch.SECTION_BUILDERS


class Finding:
    def __init__(self, text: str) -> None:
        self.text = text


class SharpFinding(Finding):
    pass


def test_every_backend_result_has_its_section_builder():
    assert dispatch.builder_for(AttributionResult) is gallery_section
    assert dispatch.builder_for(MetricResult) is metric_section
    for result_type in (RoarResult, ShapSummaryResult, EvaluationResult):
        assert result_type in dispatch.SECTION_BUILDERS


def test_a_new_result_type_needs_one_function_and_one_registration(registry):
    with pytest.raises(TypeError, match=r"@section_builder\(Finding\)"):
        build_section(Finding("x"))

    @section_builder(Finding)
    def finding_section(result: Finding, title: str = "Findings") -> Section:
        return Section(key="finding", title=title, blocks=(), description=result.text)

    section = build_section(Finding("a <b>"), title="Mine")
    assert (section.key, section.title, section.description) == ("finding", "Mine", "a <b>")
    assert build_section(SharpFinding("sub")).description == "sub"  # a subclass reuses its parent's builder
    with pytest.raises(ValueError, match="registered twice"):
        section_builder(Finding)(finding_section)
