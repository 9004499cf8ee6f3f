"""Exported models: ONNX Runtime and LiteRT embedders match Keras, carry their ModelInfo, and
run with TensorFlow unavailable (the light install)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facenet import FaceNet, ModelError, ModelNotFoundError
from facenet.runtime import load_exported, read_exported_info

pytest.importorskip("keras")
pytest.importorskip("tf2onnx")


def crops(n: int, size: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def keras_model(small_model_file):
    from facenet.models import load_keras_model

    return load_keras_model(small_model_file)


@pytest.fixture(scope="module")
def reference(small_model):
    return small_model.embed(crops(7), detect=False)


@pytest.fixture(scope="module")
def onnx_file(keras_model, tmp_path_factory):
    from facenet.export import export_onnx

    return export_onnx(*keras_model, tmp_path_factory.mktemp("onnx") / "small.onnx")


@pytest.fixture(scope="module")
def tflite_file(keras_model, tmp_path_factory):
    pytest.importorskip("ai_edge_litert")
    from facenet.export import export_tflite

    return export_tflite(*keras_model, tmp_path_factory.mktemp("tflite") / "small.tflite")


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_export_matches_keras_and_keeps_info(fmt, request, small_model, reference):
    path = request.getfixturevalue(f"{fmt}_file")
    model = FaceNet.load(path)
    assert model.info == small_model.info
    assert model.embedder.runtime.startswith({"onnx": "onnxruntime", "tflite": "litert"}[fmt])
    out = model.embed(crops(7), detect=False, batch_size=3)  # batch sizes 3, 3, 1
    assert out.shape == (7, 128) and out.dtype == np.float32
    np.testing.assert_allclose(out, reference, atol=1e-4)
    np.testing.assert_allclose(model.embed_crops(crops(7)), reference, atol=1e-4)
    assert read_exported_info(path) == small_model.info


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_fixed_batch_and_float_input(fmt, keras_model, reference, tmp_path):
    if fmt == "tflite":
        pytest.importorskip("ai_edge_litert")
    from facenet import export

    writer = getattr(export, f"export_{fmt}")
    fixed = writer(*keras_model, tmp_path / f"b4.{fmt}", batch=4)
    embedder, _ = load_exported(fixed)
    assert embedder.batch == 4
    np.testing.assert_allclose(embedder(crops(7)), reference, atol=1e-4)  # padded to 8
    floats = writer(*keras_model, tmp_path / f"f32.{fmt}", input_dtype="float32")
    embedder, _ = load_exported(floats)
    assert embedder.dtype == np.float32
    np.testing.assert_allclose(embedder(crops(7)), reference, atol=1e-4)
    np.testing.assert_allclose(embedder(crops(7).astype(np.float32)), reference, atol=1e-4)
    assert embedder(crops(0)).shape == (0, 128)


def test_int8_exports_stay_close(keras_model, reference, tmp_path):
    pytest.importorskip("onnx")
    from facenet import export
    from facenet.quantize import quantize_onnx

    calibration = crops(16, seed=1)
    results = {}
    float_path = export.export_onnx(*keras_model, tmp_path / "f.onnx")
    results["onnx"] = quantize_onnx(float_path, tmp_path / "q.onnx", calibration)
    if _has_litert():
        results["tflite"] = export.export_tflite(
            *keras_model, tmp_path / "q.tflite", calibration=calibration
        )
    for fmt, path in results.items():
        embedder, info = load_exported(path)
        out = embedder(crops(7))
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-4)
        cosine = np.sum(out * reference, axis=1)
        assert cosine.min() > 0.9, (fmt, cosine)
        assert path.stat().st_size < float_path.stat().st_size / 2


def _has_litert() -> bool:
    try:
        import ai_edge_litert  # noqa: F401
    except ImportError:
        return False
    return True


def test_missing_metadata_sidecar_and_bad_files(onnx_file, small_model, tmp_path):
    import onnx

    proto = onnx.load(str(onnx_file))
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    with pytest.raises(ModelError, match="not a FaceNet export"):
        FaceNet.load(bare)
    (tmp_path / "bare.onnx.json").write_text(small_model.info.to_json())
    assert FaceNet.load(bare).info == small_model.info

    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="junk.onnx"):
        FaceNet.load(junk)
    with pytest.raises(ModelNotFoundError):
        load_exported(tmp_path / "absent.onnx")
    junk_tflite = tmp_path / "junk.tflite"
    junk_tflite.write_bytes(b"\0" * 64)
    with pytest.raises(ModelError, match="junk.tflite"):
        FaceNet.load(junk_tflite)


def test_wrong_crop_shape_is_a_clear_error(onnx_file):
    embedder, _ = load_exported(onnx_file)
    with pytest.raises(ValueError, match=r"\(n, 64, 64, 3\)"):
        embedder(crops(2, size=32))


#: Makes `import tensorflow`, `keras`, `tf2onnx` and `onnx` fail, as in the light install.
BLOCKER = """
import importlib.abc, sys
BLOCKED = {"tensorflow", "keras", "tf2onnx", "onnx", "tf_keras", "torch"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked (light-install test)")
        return None
sys.meta_path.insert(0, Block())
"""


def test_light_install_path_never_imports_tensorflow(onnx_file, reference, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    for i, crop in enumerate(crops(2)):
        Image.fromarray(crop).save(tmp_path / f"face{i}.png")
    np.save(tmp_path / "crops.npy", crops(7))
    script = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        try:
            import tensorflow
        except ImportError:
            pass
        else:
            raise SystemExit("blocker not active")
        from facenet import FaceNet
        model = FaceNet.load({str(onnx_file)!r})
        out = model.embed(np.load({str(tmp_path / "crops.npy")!r}), detect=False)
        np.save({str(tmp_path / "out.npy")!r}, out)
        assert model.verify({str(tmp_path / "face0.png")!r}, {str(tmp_path / "face0.png")!r},
                            detect=False).same
        from facenet.cli import main
        sys.argv = ["facenet", "verify", "--no-detect", "--json", "--model", {str(onnx_file)!r},
                    {str(tmp_path / "face0.png")!r}, {str(tmp_path / "face1.png")!r}]
        try:
            main()
        except SystemExit as exc:
            assert not exc.code, exc.code
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in
                        ("tensorflow", "keras", "tf2onnx", "onnx"))
        assert not loaded, loaded
        """
    )
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert '"distance"' in done.stdout
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), reference, atol=1e-4)


def test_runtime_package_source_has_no_tensorflow_import():
    root = Path(__file__).resolve().parents[1] / "facenet" / "runtime"
    for name in ("__init__.py", "onnx_runtime.py", "litert.py", "batching.py"):
        text = (root / name).read_text()
        assert "import tensorflow" not in text and "import keras" not in text, name
