"""Bad user images get clear messages; odd modes are converted."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

import explain
from explain.data.images import image_digest, to_rgb


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def huge_png_header(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR declaring a huge image, with a tiny IDAT."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )


def test_text_file_renamed_png_is_refused():
    with pytest.raises(explain.ImageLoadError, match="not an image"):
        explain.load_image_bytes(b"just some text, not pixels\n" * 10, "notes.png")


def test_truncated_jpeg_is_refused():
    data = encode(explain.load_sample("coffee"), "JPEG", quality=90)
    with pytest.raises(explain.ImageLoadError, match="damaged or truncated"):
        explain.load_image_bytes(data[: len(data) // 2], "half.jpg")


def test_empty_file_is_refused():
    with pytest.raises(explain.ImageLoadError, match="empty"):
        explain.load_image_bytes(b"", "empty.png")


@pytest.mark.parametrize(
    "side, message", [(20000, "too large.*400000000 pixels"), (10000, "10000 x 10000.*100 megapixels")]
)
def test_huge_png_is_refused_before_decoding(side, message):
    with pytest.raises(explain.ImageLoadError, match=message):
        explain.load_image_bytes(huge_png_header(side, side), "bomb.png")


@pytest.mark.slow
def test_real_20000_square_png_is_refused():
    data = encode(Image.new("1", (20000, 20000)), "PNG")
    with pytest.raises(explain.ImageLoadError, match="too large.*megapixels"):
        explain.load_image_bytes(data, "big.png")


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "I;16", "CMYK"])
def test_other_modes_are_converted_to_rgb(mode):
    source = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8))
    image = source.convert(mode) if mode != "I;16" else source.convert("L").convert("I;16")
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    out = explain.load_image_bytes(encode(image, fmt), f"x.{fmt.lower()}")
    assert out.mode == "RGB" and out.size == (50, 40)


def test_transparent_pixels_become_white():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert to_rgb(rgba).getpixel((0, 0)) == (255, 255, 255)


def test_webp_and_jpeg_round_trip():
    source = explain.load_sample("chelsea")
    for fmt in ("WEBP", "JPEG", "PNG"):
        out = explain.load_image_bytes(encode(source, fmt, quality=95) if fmt != "PNG" else encode(source, fmt), "x")
        assert out.size == source.size
        assert np.abs(np.asarray(out, float) - np.asarray(source, float)).mean() < 4


def test_digest_follows_content():
    a = explain.load_sample("chelsea")
    assert image_digest(a) == image_digest(a.copy()) != image_digest(explain.load_sample("coffee"))
