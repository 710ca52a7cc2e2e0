"""Issue 14: bad inputs, faults and races that used to break the backend and the CLI.
Each case gets a one-line message or a bounded cost (time and memory asserted loosely
enough for a busy 2-core machine), and nothing else in the run is lost."""

from __future__ import annotations

import io
import struct
import threading
import time
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import explain
from explain.data.datasets import DatasetError, dataset_from_folder, dataset_from_zip
from explain.analyses import RoarAnalysis, RoarInputs
from explain.jobs import JobLimitError, JobRunner, JobStore
from explain.jobs.pools import POOL_SIZES
from explain.methods.registry import MethodSpec
from explain.metrics import roar
from explain.models import CustomModelError, Preprocessing, parse_class_names, parse_floats
from explain.models.small_cnn import SmallCNN as RoarCNN, TrainRecipe, base_model_path, new_model
from reports import cli

from .measure import run_measured
from .patience import generous
from .test_byom_backend import png_bytes, torch_bytes, zip_bytes
from .test_roar import oracle_ranker, patch_dataset

MB = 2**20


# ----------------------------------------------------------------------------- 1, 2: class names

def test_class_names_json_nested_100000_deep_gets_a_message():
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(CustomModelError, match="nested too deeply"):
        parse_class_names(deep, "deep.json")


def test_duplicate_check_of_80000_class_names_names_the_repeat():
    """The check's speed is measured in bench/bench_hardening.py (no test asserts on time)."""
    names = [f"class {i:05d}" for i in range(80_000)]  # 0.9 MB
    with pytest.raises(CustomModelError, match=r"class names repeat \(class 00007\)"):
        parse_class_names("\n".join([*names, "class 00007"]).encode(), "many.txt")
    assert parse_class_names("\n".join(names).encode(), "many.txt") == names


# ----------------------------------------------------------------------------- 3, 4: state dicts

def deflated_state_dict(path: Path, inflated_bytes: int) -> None:
    """A `torch.save` zip of {"w": zeros} whose storage member is deflated: about a
    thousandth of `inflated_bytes` on disk, `inflated_bytes` once torch reads it."""
    n0, n = 123_457, inflated_bytes // 4
    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(n0)}, buffer)
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as source, \
            zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as out:
        for info in source.infolist():
            data = source.read(info)
            if info.filename.endswith("/data/0"):  # the storage: n float32 zeros, streamed
                with out.open(info.filename, "w", force_zip64=True) as handle:
                    for start in range(0, n * 4, 16 * MB):
                        handle.write(bytes(min(16 * MB, n * 4 - start)))
                continue
            if info.filename.endswith("data.pkl"):  # the pickle declares the storage's size and the shape
                declared = b"J" + struct.pack("<i", n0)
                assert data.count(declared) == 2
                data = data.replace(declared, b"J" + struct.pack("<i", n))
            out.writestr(info.filename, data)


@pytest.mark.slow
def test_deflated_state_dict_is_measured_before_it_is_inflated(tmp_path):
    path = tmp_path / "bomb.pt"
    deflated_state_dict(path, 2**30)
    assert path.stat().st_size < 8 * MB  # under the 64 MB upload limit
    measured = run_measured(f"""
        from pathlib import Path
        from explain.models import CustomModelError, UploadedModel, load_uploaded_model
        data = Path({str(path)!r}).read_bytes()
        try:
            load_uploaded_model(UploadedModel("bomb.pt", data, "state_dict", "resnet18", 1000),
                                allow_torchscript=False, max_bytes=64 * 2**20)
        except CustomModelError as exc:
            result["error"] = str(exc)
    """)
    assert "inflates to 1024 MB" in measured["error"] and "64 MB" in measured["error"]
    assert measured["peak_mb"] < 1024


def test_torchscript_zip_is_measured_before_it_is_inflated_too():
    from .test_byom_backend import SmallCNN, torchscript_bytes

    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(torchscript_bytes(SmallCNN())), "r") as source, \
            zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out:
        for info in source.infolist():
            out.writestr(info.filename, source.read(info))
        out.writestr(f"{info.filename.split('/')[0]}/extra", bytes(16 * MB))  # deflates to about 16 kB
    upload = explain.models.UploadedModel("model.pt", buffer.getvalue(), "torchscript")
    with pytest.raises(CustomModelError, match="inflates to 16 MB.*up to 8 MB"):
        explain.models.load_uploaded_model(upload, allow_torchscript=True, max_bytes=8 * MB)


def test_small_deflated_state_dict_still_loads(tmp_path):
    deflated_state_dict(tmp_path / "small.pt", 4 * 1000)
    state = explain.models.read_state_dict((tmp_path / "small.pt").read_bytes(), "small.pt", max_bytes=MB)
    assert state["w"].shape == (1000,) and not state["w"].any()


@pytest.mark.slow
def test_tiny_state_dict_for_a_huge_architecture_is_refused_before_building_it():
    measured = run_measured("""
        import torch
        from explain.models import CustomModelError, build_torchvision_model
        state = {"fc.weight": torch.zeros(10, 64), "fc.bias": torch.zeros(10)}  # 2.6 kB
        for architecture in ("regnet_y_128gf", "vit_h_14"):
            try:
                build_torchvision_model(architecture, 10, state, "tiny.pt")
            except CustomModelError as exc:
                result[architecture] = str(exc)
    """)
    for architecture in ("regnet_y_128gf", "vit_h_14"):
        message = measured[architecture]
        assert f"tiny.pt does not fit {architecture} with 10 classes" in message and "missing" in message
    assert measured["peak_mb"] < 1024


def test_built_model_uses_the_files_weights_and_leaves_the_global_generator_alone():
    import torchvision

    reference = torchvision.models.resnet18(num_classes=10).eval()
    state = {k: v.clone() for k, v in reference.state_dict().items()}
    before = torch.random.get_rng_state()
    model = explain.models.build_torchvision_model("resnet18", 10, state).eval()
    assert torch.equal(torch.random.get_rng_state(), before)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))


# ----------------------------------------------------------------------------- 5, 6, 7: images

def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_with_iccp(inflated_bytes: int) -> bytes:
    """A 4 x 4 PNG whose iCCP colour profile inflates to `inflated_bytes`."""
    ihdr = struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x80" * 12 for _ in range(4))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(bytes(inflated_bytes), 9))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_png_whose_colour_profile_inflates_to_100_mb_is_skipped_with_its_reason(tmp_path, capsys):
    bomb = png_with_iccp(100 * MB)
    with pytest.raises(explain.ImageLoadError, match="icc.png: the file could not be read"):
        explain.load_image_bytes(bomb, "icc.png")
    dataset = dataset_from_zip(zip_bytes({"c/good.png": png_bytes(), "c/icc.png": bomb}), "mixed.zip")
    assert [im.name for im in dataset.images] == ["c/good.png"] and "c/icc.png" in dataset.skipped[0]
    (tmp_path / "good.png").write_bytes(png_bytes())
    (tmp_path / "icc.png").write_bytes(bomb)
    assert [im.name for im in cli.load_images(str(tmp_path))] == ["good.png"]
    assert "skipped: icc.png" in capsys.readouterr().err


def test_exif_orientation_turns_phone_photos_upright():
    stored = np.zeros((20, 40, 3), dtype=np.uint8)
    stored[:, :20] = (255, 0, 0)  # left half red, right half blue, as the sensor stored it
    stored[:, 20:] = (0, 0, 255)
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6  # Orientation: turn 90 degrees clockwise to display
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif.tobytes(), quality=95)
    upright = np.asarray(explain.load_image_bytes(buffer.getvalue(), "phone.jpg")).astype(int)
    assert upright.shape == (40, 20, 3)  # portrait
    assert upright[5, 10, 0] > 200 and upright[5, 10, 2] < 60  # the left side is now the top: red
    assert upright[35, 10, 2] > 200 and upright[35, 10, 0] < 60


def png_of_size(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


@pytest.mark.slow
def test_a_one_pixel_wide_image_costs_little_to_preprocess():
    files = {f"{w}x{h}": png_of_size(w, h) for w, h in ((10_000, 1), (1, 10_000))}
    assert all(len(data) < 200 for data in files.values())
    measured = run_measured(f"""
        import torch
        import explain
        bundle = explain.make_bundle("id", torch.nn.Flatten(), ["a"], input_size=224, resize_size=256, device="cpu")
        for name, data in {files!r}.items():
            image = explain.load_image_bytes(data, name + ".png")
            batch = bundle.preprocess_batch([image])
            result[name] = [list(batch.shape), float(bundle.to_display(batch)[0, ..., 0].mean())]
    """)
    for name in files:
        shape, red = measured[name]
        assert shape == [1, 3, 224, 224] and red == pytest.approx(200, abs=2), name
    assert measured["peak_mb"] < 1024


def test_elongated_crop_matches_resizing_the_whole_image():
    """The shortcut for long images keeps what the model sees (a gradient strip)."""
    import torchvision.transforms.v2 as T

    bundle = explain.make_bundle("id", nn.Flatten(), ["a"], input_size=32, resize_size=40, device="cpu")
    x = np.linspace(0, 255, 900)
    strip = Image.fromarray(np.repeat(np.stack([x, x[::-1], np.full_like(x, 90)], -1)[None], 60, 0).astype(np.uint8))
    expected = T.functional.center_crop(T.functional.resize(strip, 40, antialias=True), [32, 32])
    for image, reference in ((strip, expected), (strip.transpose(Image.Transpose.TRANSPOSE), expected.transpose(Image.Transpose.TRANSPOSE))):
        got = np.asarray(bundle.crop(image)).astype(int)
        assert got.shape == (32, 32, 3) and np.abs(got - np.asarray(reference).astype(int)).max() <= 3


# ----------------------------------------------------------------------------- 8: preprocessing

@pytest.mark.parametrize("mean, std", [("0.5", "nan"), ("nan", "0.5"), ("0.5", "0.2, inf, 0.2"), ("-inf", "1")])
def test_non_finite_mean_or_std_is_refused(mean, std):
    with pytest.raises(CustomModelError, match="finite"):
        Preprocessing(224, 256, parse_floats(mean, "Mean"), parse_floats(std, "Std"))


# ----------------------------------------------------------------------------- 9, 10, 11: datasets

def test_zip_entry_with_a_corrupt_deflate_stream_is_skipped_with_its_reason():
    archive = bytearray(zip_bytes({"c/a.png": png_bytes((0, 255, 0)), "c/b.png": png_bytes((0, 0, 255), size=(64, 64))}))
    info = zipfile.ZipFile(io.BytesIO(bytes(archive))).getinfo("c/b.png")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    archive[start : start + info.compress_size] = b"\xff" * info.compress_size  # invalid deflate blocks
    with pytest.raises(zlib.error):
        zipfile.ZipFile(io.BytesIO(bytes(archive))).read("c/b.png")
    dataset = dataset_from_zip(bytes(archive), "damaged.zip")
    assert [im.name for im in dataset.images] == ["c/a.png"]
    assert "c/b.png: the compressed data is damaged" in dataset.skipped[0]


def test_nul_byte_in_a_server_folder_path_gets_a_message(tmp_path):
    with pytest.raises(DatasetError, match="NUL character"):
        dataset_from_folder(f"{tmp_path}/data\0/x", [tmp_path])


def test_huge_file_named_png_in_an_allowed_folder_is_skipped_without_reading_it(tmp_path, capsys):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "a.png").write_bytes(png_bytes())
    with open(tmp_path / "cat" / "big.png", "wb") as handle:
        handle.truncate(2**30)  # sparse: 1 GB on paper, nothing on disk
    tracemalloc.start()
    try:
        dataset = dataset_from_folder(tmp_path, [tmp_path])
        images = cli.load_images(str(tmp_path / "cat"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100 * MB  # nothing of the 1 GB file was read
    assert [im.name for im in dataset.images] == ["cat/a.png"]
    assert dataset.skipped == ("cat/big.png: the file is 1024 MB; the limit is 50 MB.",)
    assert [im.name for im in images] == ["a.png"] and "big.png: the file is 1024 MB" in capsys.readouterr().err


# ----------------------------------------------------------------------------- 12: seeded methods, concurrently

class TwoConv(nn.Module):
    def __init__(self, seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv1, self.conv2, self.fc = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1), nn.Linear(8, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv2(torch.relu(self.conv1(x)))).mean(dim=(2, 3)))


@pytest.mark.slow
def test_seeded_methods_on_two_models_at_once_give_the_sequential_maps():
    bundles = [explain.make_bundle(f"m{i}", TwoConv(i), ["a", "b", "c"], input_size=48, mean=(0, 0, 0), std=(1, 1, 1),
                                   device="cpu") for i in range(2)]
    x = torch.rand(2, 3, 48, 48, generator=torch.Generator().manual_seed(3))
    jobs = [(b, method, params) for b in bundles for method, params in
            (("gradient_shap", {"n_samples": 8}), ("shap_gradient", {"n_samples": 8}))]
    expected = [explain.attribute(b, x, m, 0, **p) for b, m, p in jobs]
    cnn_data = patch_dataset(40)
    expected_init = new_model(cnn_data, TrainRecipe(width=8), 5).state_dict()
    torch.manual_seed(5)
    default_init = RoarCNN(1, 2, 8).state_dict()
    assert all(torch.equal(v, default_init[k]) for k, v in expected_init.items())  # what PyTorch's own init draws

    mismatches, errors = [], []

    def attribute_repeatedly(index: int) -> None:
        bundle, method, params = jobs[index]
        try:
            for _ in range(4):
                if not np.array_equal(explain.attribute(bundle, x, method, 0, **params), expected[index]):
                    mismatches.append(method)
        except Exception as exc:  # reported below, with the thread's method
            errors.append(f"{method}: {exc!r}")

    def initialise_repeatedly() -> None:
        for _ in range(200):
            state = new_model(cnn_data, TrainRecipe(width=8), 5).state_dict()
            if not all(torch.equal(v, state[k]) for k, v in expected_init.items()):
                mismatches.append("SmallCNN init")
            time.sleep(0.001)

    threads = [threading.Thread(target=attribute_repeatedly, args=(i,)) for i in range(len(jobs))]
    threads.append(threading.Thread(target=initialise_repeatedly))
    for t in threads:
        t.start()
    for t in threads:
        t.join(generous(60))
    assert not errors and not mismatches, (errors, mismatches)


# ----------------------------------------------------------------------------- 14 and the ROAR job cap

@pytest.fixture
def roar_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLAIN_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def roar_settings(epochs: int = 1, **kw) -> roar.RoarSettings:
    recipe = TrainRecipe(epochs=epochs, batch_size=32, learning_rate=1e-2, width=4)
    return roar.RoarSettings(methods=(MethodSpec("oracle"),), fractions=(0.5,), recipe=recipe, **kw)


def test_stop_reaches_the_training_of_the_base_model(roar_cache, monkeypatch):
    """Stop is heard at the next mini-batch: the training's stop check answers "stop"
    exactly once, and that answer ends it (observed, not timed)."""
    from explain.analyses import roar as roar_analysis

    data = patch_dataset()
    settings = roar_settings(epochs=5000)  # minutes of base-model training
    answers: list[bool] = []
    training = threading.Event()
    real = roar_analysis.trained_base_model

    def observed(*args, should_stop, **kwargs):
        def asked() -> bool:
            answers.append(should_stop())
            training.set()
            return answers[-1]
        return real(*args, should_stop=asked, **kwargs)

    monkeypatch.setattr(roar_analysis, "trained_base_model", observed)
    runner = JobRunner(JobStore(roar_cache / "store"))
    job = runner.submit(RoarAnalysis.of(data, settings), RoarInputs(data, rankers={"oracle": oracle_ranker}))
    assert training.wait(generous(5)), job.error  # mini-batches of the base model are running
    job.cancel()
    assert job.wait(generous(5)), "the base model kept training after Stop"
    assert job.state == "cancelled" and answers.count(True) == 1 and answers[-1]
    assert not base_model_path(data, settings.recipe, settings.seed).exists()  # nothing half-trained is cached


def test_roar_jobs_are_capped_per_process_with_a_clear_message(roar_cache):
    """At most two ROAR jobs run at once (the "long" pool); a few more may wait, beyond
    that a start is refused with a message, and nothing already running is disturbed."""
    release = threading.Event()

    def held(bundle, images):
        assert release.wait(generous(5))
        return oracle_ranker(bundle, images)

    data = patch_dataset()
    runner = JobRunner(JobStore(roar_cache / "store"))
    inputs = RoarInputs(data, rankers={"oracle": held})
    jobs = [runner.submit(RoarAnalysis.of(data, roar_settings(seed=seed)), inputs) for seed in range(4)]
    deadline = time.monotonic() + generous(5)
    while sum(job.state == "running" for job in jobs) < 2:  # the running two hold until released: no third starts
        assert time.monotonic() < deadline, [job.state for job in jobs]
        time.sleep(0.05)
    assert sum(job.state == "running" for job in jobs) == POOL_SIZES["long"] and sum(job.state == "queued" for job in jobs) == 2
    with pytest.raises(JobLimitError, match="at most 4"):
        runner.submit(RoarAnalysis.of(data, roar_settings(seed=99)), inputs)
    assert runner.submit(RoarAnalysis.of(data, roar_settings(seed=0)), inputs) is jobs[0]
    release.set()
    assert all(job.wait(generous(5)) and job.state == "done" for job in jobs)
    extra = runner.submit(RoarAnalysis.of(data, roar_settings(seed=99)), RoarInputs(data, rankers={"oracle": oracle_ranker}))
    assert extra.wait(generous(5)) and extra.state == "done"


def test_overlapping_training_thread_settings_leave_later_threads_as_they_were():
    """Two ROAR jobs at once used to leave every thread started later at one thread."""
    from explain.models.small_cnn import torch_threads

    original = torch.get_num_threads()
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

    def job_a() -> None:
        with torch_threads(1):
            a_in.set()
            assert b_in.wait(generous(1))
        a_out.set()

    def job_b() -> None:
        assert a_in.wait(generous(1))
        with torch_threads(1):  # enters while A holds one thread, leaves after A
            b_in.set()
            assert a_out.wait(generous(1))

    threads = [threading.Thread(target=job_a), threading.Thread(target=job_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(generous(1))
    seen = []
    later = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    later.start()
    later.join()
    assert seen == [original] and torch.get_num_threads() == original


# ----------------------------------------------------------------------------- 17: the CLI

def cli_error(args: list[str], capsys) -> str:
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("device, message", [
    ("quantum", "not a device torch knows"),
    pytest.param("cuda", "no usable CUDA GPU", marks=pytest.mark.skipif(torch.cuda.is_available(), reason="has a GPU")),
    ("cuda:7", "CUDA GPU"),
])
def test_cli_refuses_a_device_it_cannot_use_in_one_line(device, message, capsys, tmp_path):
    assert message in cli_error(["build", "--images", "coffee", "--device", device, "--out", str(tmp_path / "r.html")], capsys)


@pytest.mark.parametrize("count", ["0", "-1"])
def test_cli_refuses_a_max_images_below_one(count, capsys, tmp_path):
    assert "--max-images must be at least 1" in cli_error(
        ["build", "--images", "coffee", "--max-images", count, "--out", str(tmp_path / "r.html")], capsys)


def test_cli_refuses_deeply_nested_class_names_in_one_line(capsys, tmp_path):
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp_path / "w.pt").write_bytes(torch_bytes({"w": torch.zeros(1)}))
    err = cli_error(["build", "--weights", str(tmp_path / "w.pt"), "--arch", "resnet18", "--class-names",
                     str(tmp_path / "deep.json"), "--images", "coffee", "--out", str(tmp_path / "r.html")], capsys)
    assert "nested too deeply" in err
    assert not (tmp_path / "r.html").exists()
