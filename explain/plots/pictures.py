"""Photos and map overlays encoded once, as JPEG bytes, for pages that redraw them often.

A page following a job redraws its grid every second; handing Streamlit arrays made it
colour, blend and encode every photo and overlay again on every poll of every session
(8 sessions on one job kept the server's Python busy and the first paint of a new
visitor waited behind it: issue 24, break 5). Here each picture is made once per
content (a digest of its pixels, the map's values and the display settings) and kept
in a process-wide cache bounded in bytes, least recently used first out; Streamlit
takes bytes as they are.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections import OrderedDict
from typing import Hashable

import numpy as np
from PIL import Image

from .overlay import DisplaySettings, overlay

JPEG_QUALITY = 92
MAX_BYTES = 64 * 2**20


class EncodedPictures:
    """Encoded pictures by key, least recently used out past `max_bytes`; thread-safe."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.encoded = 0  # pictures made (the rest were cache hits)

    def get(self, key: Hashable) -> bytes | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: Hashable, data: bytes) -> bytes:
        with self._lock:
            self.encoded += 1
            old = self._entries.pop(key, None)
            self._bytes += len(data) - (len(old) if old is not None else 0)
            self._entries[key] = data
            while self._bytes > self.max_bytes and len(self._entries) > 1:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= len(evicted)
        return data


encoded_pictures = EncodedPictures()  # per process, shared by every session


def digest(array: np.ndarray) -> str:
    """A digest of an array's shape, type and values."""
    data = np.ascontiguousarray(array)
    hashed = hashlib.blake2b(repr((data.shape, data.dtype.str)).encode(), digest_size=16)
    hashed.update(data.data)
    return hashed.hexdigest()


def jpeg(image: np.ndarray) -> bytes:
    """A uint8 RGB (or grayscale) array as JPEG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, "JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def photo(image: np.ndarray) -> bytes:
    """A photo (uint8 RGB array) as JPEG bytes, encoded once per content."""
    key = ("photo", digest(image))
    return encoded_pictures.get(key) or encoded_pictures.put(key, jpeg(image))


def overlay_picture(image: np.ndarray, attribution: np.ndarray, settings: DisplaySettings) -> bytes:
    """`overlay(image, attribution, settings)` as JPEG bytes, made once per content and settings."""
    key = ("overlay", digest(image), digest(attribution), settings)
    return encoded_pictures.get(key) or encoded_pictures.put(key, jpeg(overlay(image, attribution, settings)))
