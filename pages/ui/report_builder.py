"""The report being built in this session: the sections pages add to it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import streamlit as st

if TYPE_CHECKING:
    import reports

REPORT_SECTIONS_KEY = "report_sections"


def report_sections() -> list:
    """The sections this session has added to its report, in the order added."""
    return st.session_state.setdefault(REPORT_SECTIONS_KEY, [])


def add_to_report(make_section: Callable[[], "reports.Section"], key: str, label: str = "Add to report") -> None:
    """A button that adds the page's current result to the session's report.

    `make_section` builds the section (called only on click, so pages pay nothing
    until then); a section with the same title replaces the earlier one, so adding
    again after changing settings updates it. The Reports page assembles them."""
    if not st.button(label, key=f"add_to_report:{key}", icon=":material/note_add:"):
        return
    try:
        section = make_section()
    except (ValueError, RuntimeError) as exc:
        st.error(f"Could not add this result to the report: {exc}")
        return
    sections = report_sections()
    replaced = [i for i, s in enumerate(sections) if s.title == section.title]
    if replaced:
        sections[replaced[0]] = section
    else:
        sections.append(section)
    verb = "Updated" if replaced else "Added"
    st.toast(f"{verb} “{section.title}” in the report ({len(sections)} section(s)); open the Reports page to export it.")
