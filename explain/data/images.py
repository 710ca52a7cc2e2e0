"""Images in: the bundled sample photos and safe decoding of user files.

Every image leaves this module as an RGB `PIL.Image`, turned upright as its EXIF
orientation says (phone photos). Bad input (not an image, a truncated file, a
decompression bomb, a metadata chunk that inflates too far) raises `ImageLoadError`
with a message meant for the person who uploaded it, so a collection of files can
skip that one file and go on.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

MAX_PIXELS = 40_000_000  # about 6300 x 6300; larger images are refused before decoding
MAX_BYTES = 50 * 1024 * 1024
SUPPORTED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")
UPLOAD_EXTENSIONS = ("png", "jpg", "jpeg", "webp")
# What Pillow's decoders raise on hostile or damaged files besides OSError: ValueError
# (e.g. a PNG iCCP profile inflating past MAX_TEXT_CHUNK), SyntaxError, struct errors...
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error, IndexError, KeyError)


class ImageLoadError(ValueError):
    """An input could not be used as an image; the message says why, for the user."""


@dataclass(frozen=True)
class NamedImage:
    """An RGB image with the name a person knows it by (sample name or file name)."""

    name: str
    image: Image.Image

    @property
    def digest(self) -> str:
        return image_digest(self.image)


def image_digest(image: Image.Image) -> str:
    """Content hash of an image's pixels: the cache key of everything computed from it."""
    h = hashlib.sha1(f"{image.mode}{image.size}".encode())
    h.update(image.tobytes())
    return h.hexdigest()[:20]


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        out = getattr(skimage.data, name)()
        return out[0] if isinstance(out, tuple) else out  # stereo_motorcycle -> left view

    return load


def _sklearn(filename: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image

        return load_sample_image(filename)

    return load


SAMPLES: dict[str, Callable[[], np.ndarray]] = {
    "chelsea": _skimage("chelsea"),
    "coffee": _skimage("coffee"),
    "astronaut": _skimage("astronaut"),
    "rocket": _skimage("rocket"),
    "motorcycle": _skimage("stereo_motorcycle"),
    "china": _sklearn("china.jpg"),
    "flower": _sklearn("flower.jpg"),
    "hubble": _skimage("hubble_deep_field"),
    "immunohistochemistry": _skimage("immunohistochemistry"),
}


def sample_names() -> list[str]:
    return list(SAMPLES)


@lru_cache(maxsize=None)
def load_sample(name: str) -> Image.Image:
    """A bundled sample photo (scikit-image / scikit-learn), as RGB."""
    if name not in SAMPLES:
        raise ImageLoadError(f"Unknown sample {name!r}; choose one of {', '.join(SAMPLES)}")
    return to_rgb(Image.fromarray(SAMPLES[name]()))


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any mode to RGB; transparency is composited on white, not black."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("I", "I;16", "I;16B", "F"):
        array = np.asarray(image, dtype=np.float64)
        lo, hi = float(array.min()), float(array.max())
        scaled = (array - lo) / (hi - lo or 1.0) * 255
        return Image.fromarray(scaled.astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


def load_image_bytes(data: bytes, name: str = "upload", max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode user bytes into an RGB image, refusing non-images, truncated files and bombs.

    The pixel count is checked from the header, before any pixel is decoded.
    """
    if not data:
        raise ImageLoadError(f"{name}: the file is empty.")
    if len(data) > MAX_BYTES:
        raise ImageLoadError(f"{name}: the file is {len(data) / 2**20:.0f} MB; the limit is {MAX_BYTES // 2**20} MB.")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
            fmt = probe.format
    except UnidentifiedImageError:
        raise ImageLoadError(f"{name}: this is not an image that can be read (PNG, JPEG or WebP expected).") from None
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(
            f"{name}: the image is too large to decode safely ({exc}); the limit is {max_pixels / 1e6:.0f} megapixels."
        ) from None
    except DECODE_ERRORS as exc:
        raise ImageLoadError(f"{name}: the file could not be read as an image ({exc}).") from None
    if fmt not in SUPPORTED_FORMATS:
        raise ImageLoadError(f"{name}: {fmt} images are not supported (PNG, JPEG or WebP expected).")
    if width * height > max_pixels:
        raise ImageLoadError(
            f"{name}: the image is {width} x {height} pixels ({width * height / 1e6:.0f} megapixels); "
            f"the limit is {max_pixels / 1e6:.0f} megapixels. Please downscale it."
        )
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            if getattr(image, "n_frames", 1) > 1:
                image.seek(0)
            return to_rgb(ImageOps.exif_transpose(image))  # a copy, upright
    except (*DECODE_ERRORS, Image.DecompressionBombError) as exc:
        raise ImageLoadError(f"{name}: the image is damaged or truncated and cannot be decoded ({exc}).") from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


def read_image_file(path: str | os.PathLike, name: str | None = None, max_bytes: int = MAX_BYTES) -> bytes:
    """The bytes of an image file, refused with `ImageLoadError` when larger than
    `max_bytes`: the size is checked with `os.stat` before anything is read, and at
    most `max_bytes + 1` bytes are ever read (a file may grow meanwhile)."""
    name = name or os.path.basename(path)
    try:
        size = os.stat(path).st_size
        if size > max_bytes:
            raise ImageLoadError(f"{name}: the file is {size / 2**20:.0f} MB; the limit is {max_bytes // 2**20} MB.")
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise ImageLoadError(f"{name}: the file cannot be read ({exc.strerror or exc}).") from None
    if len(data) > max_bytes:
        raise ImageLoadError(f"{name}: the file is larger than {max_bytes // 2**20} MB, the limit.")
    return data
