"""The report being built in this session: its sections, in order, which of them are
included, and its title, author and description.

It is one plain object in the session (`ReportDraft`), never widget state, so no page
switch, fragment rerun or "Add to report" elsewhere can drop any of it; the Reports
page's widgets read from it and write back to it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import streamlit as st

if TYPE_CHECKING:
    import reports

DRAFT_KEY = "report_draft"
DEFAULT_TITLE = "Attribution report"


@dataclass
class DraftSection:
    section: "reports.Section"
    included: bool = True
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])


@dataclass
class ReportDraft:
    title: str = DEFAULT_TITLE
    author: str = ""
    description: str = ""
    sections: list[DraftSection] = field(default_factory=list)
    version: int = 0  # bumped on every change: the rendered preview is cached by it

    def add(self, section: "reports.Section") -> str:
        """Add `section`, or replace the one with the same title in place (keeping its
        position and whether it is included). Returns "Added" or "Updated"."""
        self.version += 1
        for item in self.sections:
            if item.section.title == section.title:
                item.section = section
                return "Updated"
        self.sections.append(DraftSection(section))
        return "Added"

    def move(self, section_id: str, offset: int) -> None:
        i = next(i for i, s in enumerate(self.sections) if s.id == section_id)
        j = min(max(i + offset, 0), len(self.sections) - 1)
        self.sections.insert(j, self.sections.pop(i))
        self.version += 1

    def remove(self, section_id: str) -> None:
        self.sections = [s for s in self.sections if s.id != section_id]
        self.version += 1

    def set_included(self, section_id: str, included: bool) -> None:
        for item in self.sections:
            if item.id == section_id and item.included != included:
                item.included = included
                self.version += 1

    def clear(self) -> None:
        self.sections.clear()
        self.version += 1

    @property
    def chosen(self) -> list["reports.Section"]:
        return [s.section for s in self.sections if s.included]


def draft() -> ReportDraft:
    """This session's report draft."""
    return st.session_state.setdefault(DRAFT_KEY, ReportDraft())


def add_to_report(make_section: Callable[[], "reports.Section"], key: str, label: str = "Add to report") -> None:
    """A button that adds the page's current result to the session's report.

    `make_section` builds the section (called only on click, so pages pay nothing
    until then); a section with the same title replaces the earlier one. The Reports
    page assembles them."""
    if not st.button(label, key=f"add_to_report:{key}", icon=":material/note_add:"):
        return
    try:
        section = make_section()
    except (ValueError, RuntimeError) as exc:
        st.error(f"Could not add this result to the report: {exc}")
        return
    report = draft()
    verb = report.add(section)
    st.toast(
        f"{verb} “{section.title}” in the report ({len(report.sections)} section(s)); open the Reports page to export "
        "it."
    )
