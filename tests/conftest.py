"""Shared fixtures: data locations, small real model files, an isolated cache directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LFW_DIR = SHARED_DATA / "lfw" / "lfw-deepfunneled"
CELEBA_DIR = SHARED_DATA / "celeba"


def lfw_image(name: str, index: int = 1) -> Path:
    path = LFW_DIR / name / f"{name}_{index:04d}.jpg"
    if not path.is_file():
        pytest.skip(f"LFW data not available at {LFW_DIR}")
    return path


def count_detect_batches(monkeypatch, detector) -> list[int]:
    """Record how many images each `detector.detect_batch` call gets (it still detects)."""
    sizes: list[int] = []
    detect_batch = detector.detect_batch

    def counted(images):
        sizes.append(len(images))
        return detect_batch(images)

    monkeypatch.setattr(detector, "detect_batch", counted)
    return sizes


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("FACENET_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def lfw_dir() -> Path:
    if not LFW_DIR.is_dir():
        pytest.skip(f"LFW data not available at {LFW_DIR}")
    return LFW_DIR


@pytest.fixture(scope="session")
def small_model_file(tmp_path_factory) -> Path:
    """A real (untrained) MobileNet FaceNet at 64 px, alpha 0.25: fast to build and run. Its
    weights are seeded, so that tests which train towards its outputs see the same targets in
    every run."""
    import keras

    from facenet.metadata import ModelInfo
    from facenet.models import build_facenet, save_model

    keras.utils.set_random_seed(0)
    model = build_facenet("mobilenet", (64, 64, 3), 128, alpha=0.25)
    info = ModelInfo(backbone="mobilenet", input_size=64, alpha=0.25, name="test-small")
    return save_model(model, info, tmp_path_factory.mktemp("models") / "small.keras")


@pytest.fixture(scope="session")
def small_model(small_model_file):
    from facenet import FaceNet

    return FaceNet.load(small_model_file)


@pytest.fixture(scope="session")
def calibrated_model_file(small_model, small_model_file) -> Path:
    """A calibrated copy of `small_model_file` beside it, as `facenet calibrate` writes one: the
    same weights in another file (so another model id), a threshold, and the small model's id
    as the model whose embeddings it makes."""
    from facenet.calibrate import Calibration, calibrated_info, write_calibrated

    info = calibrated_info(
        small_model.info, Calibration(0.9, 0.9, 10, "dev.tsv", "pairs"), of=small_model
    )
    return write_calibrated(small_model_file, info, small_model_file.parent / "calibrated.keras")


@pytest.fixture(scope="session")
def second_model_file(small_model_file) -> Path:
    """Another small model (48 px, 64-d, other weights) beside `small_model_file`: a migration
    target unlike the first."""
    import keras

    from facenet.metadata import ModelInfo
    from facenet.models import build_facenet, save_model

    keras.utils.set_random_seed(7)
    model = build_facenet("mobilenet", (48, 48, 3), 64, alpha=0.25)
    info = ModelInfo(backbone="mobilenet", input_size=48, embedding_size=64, alpha=0.25,
                     name="test-second", alignment="chip")  # fmt: skip
    return save_model(model, info, small_model_file.parent / "second.keras")


@pytest.fixture(scope="session")
def milvus_server_uri(tmp_path_factory) -> str:
    """A Milvus server for the session: $FACENET_TEST_MILVUS_URI, else an embedded one (the
    `milvus` package, facenet-keras[milvus-server]) in a temporary folder, stopped at the end.
    Skipped without the package, or when the machine already runs an embedded server (only
    one starts per machine: point $FACENET_TEST_MILVUS_URI at it instead), unless
    $FACENET_REQUIRE_MILVUS_SERVER is set (CI): then those are failures. Writes reach
    searches every 20 ms (the default 200 ms would make each enrol-then-identify slower)."""
    uri = os.environ.get("FACENET_TEST_MILVUS_URI")
    if uri:
        yield uri
        return
    required = bool(os.environ.get("FACENET_REQUIRE_MILVUS_SERVER"))
    try:
        import milvus  # noqa: F401
        import pymilvus  # noqa: F401
    except ImportError as exc:
        if required:
            raise
        pytest.skip(f"a Milvus server needs facenet-keras[milvus-server] ({exc.name} missing)")
    from facenet.gallery.milvus_embedded import TEST_CONFIG, EmbeddedMilvus

    server = EmbeddedMilvus(tmp_path_factory.mktemp("milvus-server"), **TEST_CONFIG)
    try:
        server.start()
    except RuntimeError as exc:
        if required:
            raise
        pytest.skip(f"no Milvus server: {exc}")
    yield server.uri
    server.stop()
