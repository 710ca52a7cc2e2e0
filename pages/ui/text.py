"""Text from untrusted sources (results folders, manifests, Parquet parts, file names)
shown as plain text in Streamlit's markdown: no image, link, HTML or formatting."""

from __future__ import annotations

import re

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~:$&\"'=])")
_AUTOLINK = re.compile(r"(?i)(://|www\.|@)")  # what GFM turns into a link even when escaped
WORD_JOINER = "\u2060"  # invisible: breaks the autolink pattern, not the text a reader sees


def plain(text: object, limit: int = 300) -> str:
    """`text` for a markdown string: every markdown and HTML metacharacter escaped with a
    backslash (a name like `![x](https://host/beacon)` shows as typed and fetches nothing),
    line breaks as spaces, at most `limit` characters. Streamlit's markdown turns URLs into
    links after unescaping (GFM autolink literals), so an invisible word joiner goes into
    each `://`, `www.` and `@`."""
    flat = " ".join(str(text).split())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    unlinked = _AUTOLINK.sub(lambda m: m.group(1)[0] + WORD_JOINER + m.group(1)[1:], flat)
    return _MARKDOWN_SPECIAL.sub(r"\\\1", unlinked)
