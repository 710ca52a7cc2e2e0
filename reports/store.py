"""Saved reports on the server, each under an unguessable id.

A report is stored as `<id>.html` (the same self-contained file as the download)
plus `<id>.json` (title, author, date, size, sections) for the list. Ids come from
`secrets.token_urlsafe` and every id from outside is checked against a strict
pattern before it becomes part of a path, so `../` and friends never reach the
filesystem. The directory is `$EXPLAIN_REPORTS_DIR`, by default `data/reports`
in the project (git-ignored). The app lists only the reports a session saved
itself unless `$EXPLAIN_REPORTS_LIST` is `all` (a private instance).
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from explain.storage import atomic_write

from .report import Report

STORE_ENV = "EXPLAIN_REPORTS_DIR"
DEFAULT_STORE = Path(__file__).resolve().parents[1] / "data" / "reports"
ID_BYTES = 16
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{22}")  # token_urlsafe(16) is 22 characters of this alphabet


LIST_ENV = "EXPLAIN_REPORTS_LIST"  # "all": the app lists every saved report; else only the session's own


def list_all_reports() -> bool:
    """Whether the app may list every saved report. Off by default: on a hosted app a
    stakeholder holding one link must not find the others by opening the Reports page."""
    return os.environ.get(LIST_ENV, "").strip().lower() == "all"


class ReportNotFoundError(LookupError):
    """No saved report has this id (or the id is not a valid report id)."""


@dataclass(frozen=True)
class SavedReport:
    id: str
    title: str
    author: str
    created: str
    size_bytes: int
    sections: tuple[str, ...]


def is_valid_id(report_id: object) -> bool:
    return isinstance(report_id, str) and ID_PATTERN.fullmatch(report_id) is not None


def share_link(report_id: str, base_url: str = "") -> str:
    """The link that opens a saved report read-only in the app: `<base_url>/?report=<id>`."""
    if not is_valid_id(report_id):
        raise ReportNotFoundError("not a report id")
    return f"{base_url.rstrip('/')}/?report={report_id}"


class ReportStore:
    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root or os.environ.get(STORE_ENV) or DEFAULT_STORE).resolve()

    def _paths(self, report_id: str) -> tuple[Path, Path]:
        """The two files of a report; refuses anything that is not a well-formed id."""
        if not is_valid_id(report_id):
            raise ReportNotFoundError(f"{str(report_id)[:40]!r} is not a report id")
        html, meta = self.root / f"{report_id}.html", self.root / f"{report_id}.json"
        if html.parent != self.root or meta.parent != self.root:  # belt and braces; the pattern already ensures it
            raise ReportNotFoundError("not a report id")
        return html, meta

    def save(self, report: Report, html: str) -> SavedReport:
        """Store the rendered `html` of `report` under a new id."""
        self.root.mkdir(parents=True, exist_ok=True)
        while True:
            report_id = secrets.token_urlsafe(ID_BYTES)
            html_path, meta_path = self._paths(report_id)
            if not html_path.exists():
                break
        data = html.encode("utf-8")
        saved = SavedReport(
            id=report_id,
            title=report.title,
            author=report.author,
            created=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            size_bytes=len(data),
            sections=tuple(s.title for s in report.sections),
        )
        atomic_write(html_path, data)
        atomic_write(meta_path, json.dumps(asdict(saved)).encode("utf-8"))
        return saved

    def load_html(self, report_id: str) -> str:
        html_path, _ = self._paths(report_id)
        try:
            return html_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ReportNotFoundError(f"No saved report with id {report_id}.") from None

    def info(self, report_id: str) -> SavedReport:
        _, meta_path = self._paths(report_id)
        try:
            data = json.loads(meta_path.read_text(encoding="utf-8"))
            return SavedReport(**{**data, "sections": tuple(data.get("sections", ()))})
        except FileNotFoundError:
            raise ReportNotFoundError(f"No saved report with id {report_id}.") from None
        except (ValueError, TypeError, AttributeError):
            raise ReportNotFoundError(f"The saved report {report_id} is damaged (unreadable metadata).") from None

    def list(self) -> list[SavedReport]:
        """Saved reports, newest first; unreadable entries are skipped."""
        if not self.root.is_dir():
            return []
        found = []
        for meta_path in self.root.glob("*.json"):
            if not is_valid_id(meta_path.stem):
                continue
            try:
                found.append(self.info(meta_path.stem))
            except ReportNotFoundError:
                continue
        return sorted(found, key=lambda r: (r.created, r.id), reverse=True)

    def delete(self, report_id: str) -> None:
        html_path, meta_path = self._paths(report_id)
        if not html_path.exists() and not meta_path.exists():
            raise ReportNotFoundError(f"No saved report with id {report_id}.")
        html_path.unlink(missing_ok=True)
        meta_path.unlink(missing_ok=True)
