"""Report builder: sections of plain data, rendered by Jinja2 templates (autoescape on)
into one self-contained HTML file, a store of saved reports with unguessable ids, and
a command line (`python -m reports build ...`). No Streamlit here."""

from .dispatch import build_section, section_builder
from .render import render_report, render_to_file
from .report import Report, ReportHeader
from . import sections_compare  # noqa: F401  (registers the comparison and mistakes sections)
from .sections import Figure, ImageGrid, MethodInfo, Section, SectionContext, Table, gallery_section, make_context
from .store import ReportNotFoundError, ReportStore, SavedReport, is_valid_id, share_link

__all__ = [
    "build_section", "section_builder",
    "render_report", "render_to_file", "Report", "ReportHeader",
    "Figure", "ImageGrid", "MethodInfo", "Section", "SectionContext", "Table", "gallery_section",
    "make_context", "ReportNotFoundError", "ReportStore", "SavedReport", "is_valid_id", "share_link",
]
