"""The embedding API and model files: round trips, weights by name, and every bad input."""

from __future__ import annotations

import re
import zipfile

import numpy as np
import pytest
from PIL import Image

from facenet import FaceNet, ImageError, ModelError, ModelNotFoundError
from facenet.images import MAX_PIXELS, load_image

from .conftest import lfw_image

pytest.importorskip("keras")


def crops(n: int, size: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_embed_shapes_and_unit_norm(small_model):
    out = small_model.embed(crops(5), detect=False)
    assert out.shape == (5, 128) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_embed_batching_does_not_change_results(small_model):
    x = crops(7)
    whole = small_model.embed(x, detect=False, batch_size=32)
    pieces = small_model.embed(x, detect=False, batch_size=3)
    np.testing.assert_allclose(whole, pieces, atol=1e-5)
    single = small_model.embed(x[2], detect=False)
    np.testing.assert_allclose(single[0], whole[2], atol=1e-5)


def test_embed_batch_size_is_bounded_as_on_the_command_line(small_model):
    """1..MAX_BATCH_SIZE, checked by the command line's own `check_batch_size`: a ValueError (and
    a FaceNetError) naming the range, before any photo is read."""
    from facenet.errors import FaceNetError
    from facenet.images import MAX_BATCH_SIZE

    x = crops(3)
    for bad in (0, -1, MAX_BATCH_SIZE + 1):
        for images in (x, list(x), ["absent.jpg"]):
            with pytest.raises(ValueError, match=rf"^batch_size must be 1\.\.1024; got {bad}$"):
                small_model.embed(images, detect=False, batch_size=bad)
        with pytest.raises(FaceNetError, match="batch_size must be 1..1024"):
            small_model.embed(["absent.jpg"], batch_size=bad)
    assert small_model.embed(x, detect=False, batch_size=MAX_BATCH_SIZE).shape == (3, 128)
    for bad in (0, -1, MAX_BATCH_SIZE + 1):  # embed_crops: the same bound, the same error
        with pytest.raises(FaceNetError, match=rf"^batch_size must be 1\.\.1024; got {bad}$"):
            small_model.embed_crops(x, batch_size=bad)
    assert small_model.embed_crops(x, batch_size=MAX_BATCH_SIZE).shape == (3, 128)


NOT_INTEGERS = [2.5, "8", True, None, np.float64(4.0), np.True_]


@pytest.mark.parametrize("bad", NOT_INTEGERS, ids=repr)
def test_embed_batch_size_that_is_no_integer_is_refused_at_the_boundary(small_model, bad):
    """2.5, "8", True, None reached range() or NumPy slicing: a TypeError from deep inside, or,
    for True, a batch of 1. Now the same one-line ArgumentError (a ValueError) as out of range,
    naming batch_size, the range and the value, before any photo is read."""
    from facenet.errors import ArgumentError

    x = crops(3)
    message = rf"^batch_size must be an integer 1\.\.1024; got {re.escape(repr(bad))}$"
    for call in (
        lambda: small_model.embed(x, detect=False, batch_size=bad),
        lambda: small_model.embed(["absent.jpg"], batch_size=bad),
        lambda: small_model.embed_crops(x, batch_size=bad),
    ):
        with pytest.raises(ArgumentError, match=message):
            call()


def test_embed_batch_size_may_be_a_numpy_integer(small_model):
    x = crops(3)
    np.testing.assert_allclose(
        small_model.embed_crops(x, batch_size=np.int64(2)), small_model.embed_crops(x), atol=1e-5
    )


def test_embed_empty_list(small_model):
    out = small_model.embed([], detect=False)
    assert out.shape == (0, 128) and out.dtype == np.float32


def test_save_load_reembed_identical(small_model, small_model_file, tmp_path):
    from facenet.models import load_keras_model, save_model

    model, info = load_keras_model(small_model_file)
    info.threshold = 0.9
    copy = save_model(model, info, tmp_path / "copy.keras")
    reloaded = FaceNet.load(copy)
    x = crops(4, seed=2)
    np.testing.assert_array_equal(
        small_model.embed(x, detect=False), reloaded.embed(x, detect=False)
    )
    assert reloaded.info.threshold == 0.9 and reloaded.threshold == 0.9
    assert reloaded.info.input_size == 64 and reloaded.info.alpha == 0.25
    assert reloaded.model_id != small_model.model_id  # different file contents


def test_weights_only_h5_loads_by_name_into_fresh_model(tmp_path):
    from facenet.metadata import ModelInfo
    from facenet.models import build_facenet, load_weights_h5, save_weights_h5

    source = build_facenet("mobilenet", (160, 160, 3), 128, alpha=0.25)
    path = save_weights_h5(source, tmp_path / "weights.h5")
    loaded = FaceNet.load(path)  # backbone, width and size read from the file
    assert (loaded.info.backbone, loaded.info.alpha, loaded.info.embedding_size) == (
        "mobilenet",
        0.25,
        128,
    )
    x = crops(2, 160)
    expected = np.asarray(source(x.astype("float32"), training=False))
    np.testing.assert_allclose(loaded.embed(x, detect=False), expected, atol=1e-5)

    other = build_facenet("mobilenet", (160, 160, 3), 64, alpha=0.25)
    with pytest.raises(ModelError, match="'Bottleneck'.*shape"):
        load_weights_h5(path, ModelInfo(alpha=0.25, embedding_size=64), model=other)


def test_h5_with_missing_layer_names_it(tmp_path):
    import h5py

    from facenet.models import build_facenet, save_weights_h5

    path = save_weights_h5(build_facenet("mobilenet", alpha=0.25), tmp_path / "w.h5")
    with h5py.File(path, "a") as f:
        del f["conv_pw_7_bn"]
    with pytest.raises(ModelError, match="conv_pw_7_bn"):
        FaceNet.load(path)


def test_wrong_model_files(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no such model file"):
        FaceNet.load(tmp_path / "absent.keras")
    text = tmp_path / "model.keras"
    text.write_text("not a model")
    with pytest.raises(ModelError, match="not a valid .keras"):
        FaceNet.load(text)
    plain = tmp_path / "plain.keras"
    with zipfile.ZipFile(plain, "w") as z:
        z.writestr("config.json", "{}")
    with pytest.raises(ModelError, match="not a FaceNet model"):
        FaceNet.load(plain)
    archive = tmp_path / "other.keras"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(ModelError, match="without a Keras model"):
        FaceNet.load(archive)
    other = tmp_path / "model.pt"
    other.write_bytes(b"\x00")
    with pytest.raises(ModelError, match="unknown model file type"):
        FaceNet.load(other)
    bad_h5 = tmp_path / "bad.h5"
    bad_h5.write_text("nope")
    with pytest.raises(ModelError, match="HDF5"):
        FaceNet.load(bad_h5)


def test_an_upper_case_keras_name_is_one_line(tmp_path):
    """Keras reads only `.keras` (lower case): the name, not the file, is what is wrong."""
    import shutil

    from facenet.catalog import WEIGHTS_DIR

    shouting = tmp_path / "MODEL.KERAS"
    shutil.copy(WEIGHTS_DIR / "facenet-mobilenet.keras", shouting)
    with pytest.raises(ModelError, match="lower case"):
        FaceNet.load(shouting)


def test_default_model_missing_is_clear(monkeypatch, tmp_path):
    import facenet.catalog

    monkeypatch.setattr(facenet.catalog, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(ModelNotFoundError, match="is not installed"):
        FaceNet.load()


# --- bad and unusual inputs -------------------------------------------------------------------


def test_missing_file_is_named(small_model, tmp_path):
    with pytest.raises(ImageError, match="absent.jpg: no such file"):
        small_model.embed([tmp_path / "absent.jpg"], detect=False)


def test_corrupt_jpeg_is_named(small_model, tmp_path):
    good = lfw_image("Aaron_Eckhart").read_bytes()
    bad = tmp_path / "truncated.jpg"
    bad.write_bytes(good[: len(good) // 3])
    with pytest.raises(ImageError, match="truncated.jpg: corrupt or truncated"):
        small_model.embed([bad], detect=False)


def test_text_file_named_jpg(small_model, tmp_path):
    fake = tmp_path / "notes.jpg"
    fake.write_text("hello, I am not a picture")
    with pytest.raises(ImageError, match="notes.jpg: not an image file"):
        small_model.embed([fake], detect=False)


def test_sixteen_bit_png_keeps_its_contrast(small_model, tmp_path):
    rgb = load_image(lfw_image("Aaron_Eckhart"))
    grey16 = (rgb.mean(axis=2).astype(np.uint16) * 257).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(grey16).save(path)
    assert Image.open(path).mode.startswith("I;16")
    loaded = load_image(path)
    assert loaded.dtype == np.uint8 and loaded.shape == (250, 250, 3)
    np.testing.assert_allclose(loaded[..., 0], grey16 >> 8, atol=1)
    assert loaded.std() > 20  # not clipped to white, as a naive convert("RGB") would do
    assert np.all(np.isfinite(small_model.embed([path], detect=False)))


def write_png16(path, pixels: np.ndarray) -> None:
    """A 16-bit PNG (greyscale, or RGB: Pillow cannot write that one) from uint16 pixels."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        return struct.pack(">I", len(data)) + kind + data + crc

    height, width = pixels.shape[:2]
    header = struct.pack(">IIBBBBB", width, height, 16, 0 if pixels.ndim == 2 else 2, 0, 0, 0)
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in pixels)
    data = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + data)


def test_sixteen_bit_pngs_are_detected_and_embedded_like_their_eight_bit_originals(tmp_path):
    """A real face as a 16-bit greyscale and a 16-bit RGB PNG: the same pixels, face and
    embedding as the 8-bit photo (whatever mode this Pillow opens them in)."""
    model = FaceNet.load()
    rgb = load_image(lfw_image("Tony_Blair"))
    grey = np.asarray(Image.fromarray(rgb).convert("L"))
    for eight, name in ((grey, "grey16.png"), (rgb, "rgb16.png")):
        write_png16(tmp_path / name, eight.astype(np.uint16) * 257)
        loaded = load_image(tmp_path / name)
        expected = np.dstack([eight] * 3) if eight.ndim == 2 else eight
        np.testing.assert_array_equal(loaded, expected)
        vectors = model.embed([tmp_path / name, expected])  # detects its face
        assert float(((vectors[0] - vectors[1]) ** 2).sum()) < 1e-6


def test_rgba_and_greyscale(small_model, tmp_path):
    rgb = load_image(lfw_image("Aaron_Eckhart"))
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    Image.fromarray(rgb).convert("L").save(tmp_path / "grey.png")
    np.testing.assert_array_equal(load_image(tmp_path / "rgba.png"), rgb)  # opaque alpha
    grey = load_image(tmp_path / "grey.png")
    assert grey.shape == rgb.shape and np.all(grey[..., 0] == grey[..., 2])
    out = small_model.embed([tmp_path / "rgba.png", tmp_path / "grey.png", rgba], detect=False)
    np.testing.assert_allclose(out[0], out[2], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_exif_rotated_jpeg_is_rotated_before_embedding(small_model, tmp_path):
    upright = load_image(lfw_image("Aaron_Eckhart"))[:, 25:225]  # 250 x 200: orientation shows
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # as a camera stores it
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rotated.jpg"
    stored.save(path, quality=95, exif=exif)
    loaded = load_image(path)
    assert loaded.shape == upright.shape
    assert np.abs(loaded.astype(int) - upright.astype(int)).mean() < 4
    emb = small_model.embed([path, upright, np.asarray(stored)], detect=False)
    assert np.sum((emb[0] - emb[1]) ** 2) < np.sum((emb[0] - emb[2]) ** 2)


def test_huge_image_is_embedded(small_model, tmp_path):
    path = tmp_path / "huge.jpg"
    Image.new("RGB", (10_000, 10_000), (120, 90, 60)).save(path, quality=70)
    out = small_model.embed([path], detect=False)
    assert out.shape == (1, 128) and np.all(np.isfinite(out))


def test_too_many_pixels_is_refused(tmp_path, monkeypatch):
    import facenet.images

    monkeypatch.setattr(facenet.images, "MAX_PIXELS", 10_000)
    path = tmp_path / "big.png"
    Image.new("RGB", (200, 200)).save(path)
    with pytest.raises(ImageError, match="too large"):
        load_image(path)
    assert MAX_PIXELS >= 100_000_000


def test_unsupported_arrays_and_types(small_model):
    with pytest.raises(ImageError, match="not an image"):
        small_model.embed([np.zeros((4, 4, 7), np.uint8)], detect=False)
    with pytest.raises(ImageError, match="unsupported input type"):
        small_model.embed([12345], detect=False)
    with pytest.raises(ImageError, match="NaN"):
        load_image(np.full((8, 8), np.nan))
    with pytest.raises(ValueError, match="on_missing must be one of"):
        small_model.embed([], on_missing="skip")


def test_float_and_uint16_arrays():
    ramp = np.linspace(0, 1, 64).reshape(8, 8)
    np.testing.assert_array_equal(
        load_image(ramp), load_image((ramp * 255).round().astype(np.uint8))
    )
    assert load_image((ramp * 65535).astype(np.uint16)).max() == 255


def test_verify_uses_the_model_threshold(small_model):
    x = crops(2)
    same = small_model.verify(x[0], x[0], detect=False)
    assert same.distance == pytest.approx(0.0, abs=1e-6) and same.same
    assert same.threshold == small_model.threshold
    strict = small_model.verify(x[0], x[1], detect=False, threshold=0.0)
    assert not strict.same and strict.threshold == 0.0
    for bad in (-1.0, float("nan"), 4.5):  # a squared-L2 distance between unit vectors: [0, 4]
        with pytest.raises(ValueError, match="threshold must be"):
            small_model.verify(x[0], x[1], detect=False, threshold=bad)


def test_a_crop_batch_gives_what_a_list_of_crops_gives(small_model):
    x = crops(7)
    direct = small_model.embed(x, detect=False, batch_size=3)  # the no-copy path
    listed = small_model.embed(list(x), detect=False, batch_size=3)  # one image at a time
    np.testing.assert_array_equal(direct, listed)


def test_whole_photos_in_chunks_detected_ahead_match_one_chunk(small_model, tmp_path):
    """Chunks after the first are detected in a worker thread while the previous one is
    embedded: same rows, same order, errors raised for the photo that has them."""
    from pathlib import Path

    photos = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.jpg"))
    blank = tmp_path / "blank.png"
    Image.new("RGB", (120, 120), (200, 200, 200)).save(blank)
    inputs = [*photos, blank, photos[0]]
    whole = small_model.embed(inputs, batch_size=32, on_missing="nan")
    chunked = small_model.embed(inputs, batch_size=2, on_missing="nan")
    np.testing.assert_allclose(chunked, whole, atol=1e-6)
    assert np.isnan(chunked[len(photos)]).all() and np.isfinite(chunked[-1]).all()
    with pytest.raises(ImageError, match="absent.jpg: no such file"):
        small_model.embed([*photos, tmp_path / "absent.jpg"], batch_size=2)


def test_bad_thresholds_and_choices_are_argument_errors(small_model):
    """A threshold that is no number ("x", [1]) failed deep inside float(), and one out of
    range or a bad on_missing / alignment was a plain ValueError that `except FaceNetError`
    missed: now each is one line, an ArgumentError (still a ValueError)."""
    from facenet.errors import ArgumentError

    x = crops(2)
    for bad in (-1.0, float("nan"), 4.5, "x", [1], object()):
        with pytest.raises(ArgumentError, match=r"^threshold must be a squared-L2 distance"):
            small_model.verify(x[0], x[1], detect=False, threshold=bad)
    with pytest.raises(ArgumentError, match="^on_missing must be one of raise, nan; got 'skip'$"):
        small_model.embed(x, on_missing="skip")
    with pytest.raises(ArgumentError, match="^on_missing must be one of raise, none"):
        small_model.align(x, on_missing="center")
    with pytest.raises(ArgumentError, match="^on_missing must be one of"):
        small_model.crops(x, on_missing=["none"])
    with pytest.raises(ArgumentError, match="^alignment must be one of crop, similarity, chip"):
        small_model.with_alignment("foo")


def test_what_is_no_image_nor_list_of_images_is_one_image_error(small_model):
    """`embed(None)` or `embed(5)` failed inside list() with a TypeError, `embed(b"...")` took
    the bytes for a list of numbers, and an unsupported item was called an "array"."""
    for bad in (None, 5, 2.5):
        for call in (small_model.embed, small_model.crops, small_model.align):
            with pytest.raises(ImageError, match="^unsupported input type .*a list of them"):
                call(bad)
    data = (lfw_image("Colin_Powell")).read_bytes()
    for call in (small_model.embed, small_model.crops):
        with pytest.raises(ImageError, match=r"^bytes: .*PIL\.Image\.open\(io\.BytesIO"):
            call(data)
    with pytest.raises(ImageError, match="^input #1: unsupported input type NoneType"):
        small_model.embed([crops(1)[0], None], detect=False)


def test_the_rest_of_the_bad_arguments_are_argument_errors(small_model):
    """`crops(detections=)` of another length failed inside zip(), `embed_crops` of the wrong
    shape was a plain ValueError, `with_alignment("crop", "x")` failed deep inside the cut and
    `FaceNet.load(5)` inside os.fspath: each is now a one-line ArgumentError."""
    from facenet.errors import ArgumentError

    x = crops(2)
    with pytest.raises(ArgumentError, match="^detections: 1 lists of faces for 2 images$"):
        small_model.crops(list(x), detections=[[]])
    with pytest.raises(ArgumentError, match=r"^crops must be uint8 of shape \(n, 64, 64, 3\)"):
        small_model.embed_crops(crops(2, size=10))
    for bad in ("x", [1], float("nan"), float("inf")):
        with pytest.raises(ArgumentError, match="^margin must be a number of pixels"):
            small_model.with_alignment("crop", bad)
    assert small_model.with_alignment("crop", 20).info.margin == 20
    with pytest.raises(ArgumentError, match="^a model is a name or a path; got int$"):
        FaceNet.load(5)


def test_a_lazily_opened_pil_image_that_cannot_decode(small_model, tmp_path):
    """`embed(Image.open(path))` of a truncated photo failed inside Pillow with an OSError, and
    of a PIL image closed since with a ValueError; now the ImageError a path gets."""
    data = lfw_image("Colin_Powell").read_bytes()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(data[: len(data) // 3])
    closed = Image.open(lfw_image("Colin_Powell"))
    closed.close()
    for image, why in ((Image.open(truncated), "truncated"), (closed, "closed image")):
        with pytest.raises(
            ImageError, match=rf"^PIL image #0: corrupt, truncated or closed .*{why}"
        ):
            small_model.embed([image], detect=False)
    assert small_model.embed(Image.open(lfw_image("Colin_Powell")), detect=False).shape == (1, 128)
