"""Ground truth in the data: masks (a folder or zip mirroring the images) and boxes
(CSV/JSON), bad masks refused one by one while the rest is used, and the mask carried
through the model's resize and crop."""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from explain.data.ground_truth import decode_mask, masks_for_images, model_view, open_ground_truth
from tests.synthetic import PatchCNN, bundle_of
from reports import build_section


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims `width` x `height` pixels, with almost no data: a bomb's
    price is paid only if someone decodes it."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = chunk(b"IDAT", zlib.compress(b"\0" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + data + chunk(b"IEND", b"")


def box_mask(height: int, width: int, box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[y0:y1, x0:x1] = 255
    return mask


IMAGES = [("cat/a.jpg", (20, 16)), ("cat/b.png", (20, 16)), ("dog/c.png", (20, 16)), ("dog/d.png", (20, 16)),
          ("dog/e.png", (20, 16)), ("dog/f.png", (20, 16))]


def test_mask_folder_mirroring_the_images_with_each_kind_of_bad_mask(tmp_path: Path) -> None:
    masks = tmp_path / "masks"
    (masks / "cat").mkdir(parents=True)
    (masks / "dog").mkdir()
    (masks / "cat" / "a.png").write_bytes(png(box_mask(16, 20, (2, 3, 8, 9))))  # a.jpg's mask: another suffix
    (masks / "cat" / "b.png").write_bytes(png(box_mask(10, 10, (1, 1, 4, 4))))  # wrong size
    grey = np.tile(np.arange(20, dtype=np.uint8) * 12, (16, 1))
    (masks / "dog" / "c.png").write_bytes(png(grey))  # not binary
    (masks / "dog" / "d.png").write_bytes(png_header_only(60_000, 60_000))  # a mask bomb
    (masks / "dog" / "e.png").write_bytes(png(np.zeros((16, 20), np.uint8)))  # empty
    source = open_ground_truth(masks)  # f.png has none
    found, problems = masks_for_images(source, IMAGES)
    assert list(found) == ["cat/a.jpg"]
    np.testing.assert_array_equal(found["cat/a.jpg"], box_mask(16, 20, (2, 3, 8, 9)) > 0)
    text = "\n".join(problems)
    assert "cat/b.png: the mask is 10 x 10 pixels, the image 20 x 16" in text
    assert "dog/c.png: the mask has 20 grey levels; a mask must be binary" in text
    assert "dog/d.png (mask)" in text and "megapixels" in text
    assert "dog/e.png: the mask is empty" in text
    assert "no ground truth for 1 of 6 image(s) (dog/f.png)" in text
    assert len(problems) == 5


def test_mask_zip_with_a_wrapping_folder_matches_the_images(tmp_path: Path) -> None:
    archive = tmp_path / "masks.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("pets_masks/cat/a.png", png(box_mask(16, 20, (0, 0, 5, 5))))
        z.writestr("pets_masks/dog/c.png", png(box_mask(16, 20, (5, 5, 9, 9)) // 255))  # 0/1 masks are binary too
    found, problems = masks_for_images(open_ground_truth(archive), IMAGES[:3])
    assert sorted(found) == ["cat/a.jpg", "dog/c.png"] and int(found["dog/c.png"].sum()) == 16
    assert len(problems) == 1 and "cat/b.png" in problems[0]


@pytest.mark.parametrize("kind", ["csv", "json_rows", "json_map"])
def test_boxes_from_csv_and_json_make_masks_and_bad_rows_are_listed(tmp_path: Path, kind: str) -> None:
    rows = [("cat/a.jpg", 1, 2, 5, 6), ("a.jpg", 10, 10, 12, 12), ("b.png", 0, 0, 30, 4), ("c.png", "x", 0, 1, 1)]
    if kind == "csv":
        path = tmp_path / "boxes.csv"
        path.write_text("image,x0,y0,x1,y1\n" + "\n".join(",".join(map(str, r)) for r in rows))
    elif kind == "json_rows":
        path = tmp_path / "boxes.json"
        path.write_text(json.dumps([dict(zip(("image", "x0", "y0", "x1", "y1"), r, strict=False)) for r in rows]))
    else:
        path = tmp_path / "boxes.json"
        grouped: dict[str, list] = {}
        for image, *box in rows:
            grouped.setdefault(image, []).append(box)
        path.write_text(json.dumps(grouped))
    found, problems = masks_for_images(open_ground_truth(path), IMAGES[:3])
    assert list(found) == ["cat/a.jpg"]  # "cat/a.jpg" and "a.jpg" name the same image: the exact path wins
    assert int(found["cat/a.jpg"].sum()) == 16 and found["cat/a.jpg"][2:6, 1:5].all()
    text = "\n".join(problems)
    assert "box 4 (c.png) is not image, x0, y0, x1, y1" in text
    assert "cat/b.png: the box (0, 0, 30, 4) is empty or outside the 20 x 16 image" in text


def test_a_csv_without_the_columns_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "boxes.csv"
    path.write_text("file,left,top\nx.png,1,2\n")
    with pytest.raises(ValueError, match="needs the columns image, x0, y0, x1, y1"):
        open_ground_truth(path)


def test_the_mask_follows_the_image_through_the_models_resize_and_crop() -> None:
    """A white square drawn in the image and its mask land on the same pixels of the
    model's view (resize of the short side, center crop)."""
    bundle = bundle_of(PatchCNN(), 16, 2, resize_size=20)
    picture = np.zeros((30, 50, 3), np.uint8)
    picture[8:20, 20:32] = 255
    mask = decode_mask(png((picture[..., 0] > 0).astype(np.uint8) * 255), "x.png", (50, 30))
    seen = np.asarray(bundle.crop(Image.fromarray(picture)))[..., 0] >= 128
    np.testing.assert_array_equal(model_view(mask, bundle.crop), seen)
    assert seen.any() and not seen.all()


def test_localisation_as_an_analysis_with_masks_its_detail_and_report_section(tmp_path: Path) -> None:
    """The page path: ground truth attached to the prepared images (a mask digest in the
    settings), an oracle-like method scored, the per-image view outlining the mask, and
    the report CLI taking --masks."""
    import explain
    from explain.analyses import MetricAnalysis, prepare_images, run_directly
    from explain.analyses.inputs import with_truth
    from explain.data.ground_truth import ImageTruth
    from explain.methods.registry import MethodSpec
    from explain.plots.masks import OUTLINE

    bundle = bundle_of(PatchCNN(), 32, 2, resize_size=32)  # the model sees the whole picture
    rng = np.random.default_rng(0)
    images = []
    for i in range(2):
        pixels = rng.integers(0, 80, (32, 32, 3)).astype(np.uint8)
        pixels[4:12, 18:26] = (255, 0, 0)  # PatchCNN's evidence: the red patch
        images.append(explain.NamedImage(f"p{i}.png", Image.fromarray(pixels)))
    patch = box_mask(32, 32, (18, 4, 26, 12)) > 0
    truth = ImageTruth("masks", {"p0.png": patch})  # p1 has none
    prepared = with_truth(prepare_images(bundle, images), images, truth)
    subject = prepared.subject()
    assert subject.truth[0] and subject.truth[1] == ""
    analysis = MetricAnalysis.of("relevance_mass_accuracy", subject, (MethodSpec.of("saliency"),))
    assert analysis.key != MetricAnalysis.of("relevance_mass_accuracy", prepare_images(bundle, images).subject(),
                                             (MethodSpec.of("saliency"),)).key
    result = run_directly(analysis, prepared)
    curves = result.curves["relevance_mass_accuracy"]["saliency"]
    assert curves.kept == (0,) and curves.skipped[0].index == 1 and 0 < curves.score <= 1
    strip = result.detail(prepared, np.repeat(patch[None].astype(np.float32), 2, axis=0), "saliency", 0)
    assert strip is not None and strip.captions == ("image", "map") and "outlined in cyan" in strip.note
    assert (strip.images[0][4, 18:26] == OUTLINE).all()  # the mask's top edge
    section = build_section(result)
    assert section.key == "relevance_mass_accuracy" and section.blocks

    folder, masks = tmp_path / "images", tmp_path / "masks"
    folder.mkdir()
    masks.mkdir()
    for image in images:
        image.image.save(folder / image.name)
    (masks / "p0.png").write_bytes(png(patch.astype(np.uint8) * 255))
    from reports.cli import load_truth
    loaded = load_truth(str(masks), images)
    assert loaded is not None and list(loaded.masks) == ["p0.png"] and "p1.png" in loaded.problems[0]
