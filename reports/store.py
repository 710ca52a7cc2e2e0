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
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from explain.storage import STRAY_SECONDS, atomic_write, clean_stray_temporaries

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


def _saved_report(data: object, report_id: str) -> SavedReport | None:
    """The metadata as a `SavedReport` when every field has its type (and its id is the
    file's), else None: `"created": 5` or a JSON list is a damaged entry."""
    if not isinstance(data, dict):
        return None
    texts = all(isinstance(data.get(name), str) for name in ("id", "title", "author", "created"))
    size = data.get("size_bytes")
    sections = data.get("sections", [])
    if (not texts or data["id"] != report_id or not isinstance(size, int) or isinstance(size, bool) or size < 0
            or not isinstance(sections, list) or not all(isinstance(s, str) for s in sections)):
        return None
    return SavedReport(data["id"], data["title"], data["author"], data["created"], size, tuple(sections))


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
        self.skipped = 0  # damaged entries the last `list()` left out

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
        try:
            atomic_write(meta_path, json.dumps(asdict(saved)).encode("utf-8"))
        except BaseException:  # a full disk, say: no report the app could neither list nor delete
            html_path.unlink(missing_ok=True)
            raise
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
        except FileNotFoundError:
            raise ReportNotFoundError(f"No saved report with id {report_id}.") from None
        except ValueError:
            data = None
        saved = _saved_report(data, report_id)
        if saved is None:
            raise ReportNotFoundError(f"The saved report {report_id} is damaged (unreadable metadata).")
        return saved

    def list(self) -> list[SavedReport]:
        """Saved reports, newest first; damaged entries are skipped (`skipped` counts them)."""
        self.skipped = 0
        if not self.root.is_dir():
            return []
        found = []
        for meta_path in self.root.glob("*.json"):
            if not is_valid_id(meta_path.stem):
                continue
            try:
                found.append(self.info(meta_path.stem))
            except ReportNotFoundError:
                self.skipped += 1
        return sorted(found, key=lambda r: (r.created, r.id), reverse=True)

    def clean(self, older_than: float = STRAY_SECONDS) -> int:
        """Remove what a killed or failed save left: a report `.html` without its metadata
        (the app could neither list nor delete it) and stray temporary files, once older
        than `older_than` seconds (a save under way in another process is left alone).
        Returns how many files were removed. Called once per process at start-up."""
        if not self.root.is_dir():
            return 0
        removed = clean_stray_temporaries(self.root, older_than, recursive=False)
        cutoff = time.time() - older_than
        for html_path in self.root.glob("*.html"):
            if is_valid_id(html_path.stem) and not html_path.with_suffix(".json").exists():
                try:
                    if html_path.stat().st_mtime < cutoff:
                        html_path.unlink()
                        removed += 1
                except OSError:
                    continue
        return removed

    def delete(self, report_id: str) -> None:
        html_path, meta_path = self._paths(report_id)
        if not html_path.exists() and not meta_path.exists():
            raise ReportNotFoundError(f"No saved report with id {report_id}.")
        html_path.unlink(missing_ok=True)
        meta_path.unlink(missing_ok=True)
