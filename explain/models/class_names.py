"""Class names from a user's file: one name per line, or JSON (a list, or an index ->
name mapping as in `imagenet_class_index.json`)."""

from __future__ import annotations

import json
from collections import Counter

from .errors import CustomModelError

CLASS_NAMES_SUFFIXES = (".txt", ".json", ".csv")
MAX_CLASS_NAMES_BYTES = 5 * 2**20


def parse_class_names(data: bytes, filename: str = "classes") -> list[str]:
    """Class names from a text file (one per line; empty lines ignored) or JSON: a list of
    names, or a mapping index -> name (`{"0": "cat"}`; a value may be a list whose last
    item is the name, as in `imagenet_class_index.json`)."""
    if len(data) > MAX_CLASS_NAMES_BYTES:
        raise CustomModelError(f"{filename}: the class-names file is larger than {MAX_CLASS_NAMES_BYTES // 2**20} MB.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CustomModelError(f"{filename}: the class-names file is not UTF-8 text.") from None
    stripped = text.strip()
    if not stripped:
        raise CustomModelError(f"{filename}: the class-names file is empty.")
    if filename.lower().endswith(".json") or stripped[0] in "[{":
        names = _names_from_json(stripped, filename)
    else:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    counts = Counter(names)  # one pass: `names.count` per name took minutes for 80,000 names
    if len(counts) != len(names):
        repeated = sorted(n for n, c in counts.items() if c > 1)[:5]
        raise CustomModelError(f"{filename}: class names repeat ({', '.join(repeated)}).")
    return names


def _names_from_json(text: str, filename: str) -> list[str]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CustomModelError(f"{filename}: not valid JSON ({exc.msg}, line {exc.lineno}).") from None
    except RecursionError:
        raise CustomModelError(f"{filename}: the JSON is nested too deeply to be a list of class names.") from None
    if isinstance(value, list):
        items = value
    elif isinstance(value, dict):
        try:
            indices = sorted(int(k) for k in value)
        except ValueError:
            raise CustomModelError(f"{filename}: a JSON object must map class indices (0, 1, ...) to names.") from None
        if indices != list(range(len(indices))):
            raise CustomModelError(f"{filename}: the class indices must run 0..{len(indices) - 1} without gaps.")
        items = [value[k] for k in sorted(value, key=int)]
    else:
        raise CustomModelError(f"{filename}: JSON class names must be a list or an object, not {type(value).__name__}.")
    names = []
    for item in items:
        if isinstance(item, list) and item:
            item = item[-1]
        if not isinstance(item, (str, int, float)) or not str(item).strip():
            raise CustomModelError(f"{filename}: every class name must be a non-empty string, got {item!r}.")
        names.append(str(item).strip())
    return names
