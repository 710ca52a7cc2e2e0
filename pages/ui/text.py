"""Text from untrusted sources (results folders, manifests, Parquet parts, file names)
shown as plain text in Streamlit's markdown: no image, link, HTML or formatting."""

from __future__ import annotations

import re

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~:$&\"'=])")


def plain(text: object, limit: int = 300) -> str:
    """`text` for a markdown string: every markdown and HTML metacharacter escaped with a
    backslash (a name like `![x](https://host/beacon)` shows as typed and fetches nothing),
    line breaks as spaces, at most `limit` characters."""
    flat = " ".join(str(text).split())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return _MARKDOWN_SPECIAL.sub(r"\\\1", flat)
