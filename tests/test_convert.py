"""Public-weight converters, each checked against an independent run of the source network.

The public files cannot be downloaded here, so each test writes a file in the source's own
format and layout with random values: a TF1 checkpoint built by a tf.compat.v1 re-implementation
of davidsandberg/facenet's slim graph (which also computes the reference embedding), and a
facenet-pytorch state dict made and run by facenet-pytorch itself in /work/torch-venv.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from facenet import FaceNet, ModelError

tf = pytest.importorskip("tensorflow")

SIZE = 80  # the smallest comfortable Inception-ResNet-v1 input (>= 75 px)
TORCH_PYTHON = Path(os.environ.get("FACENET_TORCH_PYTHON", "/work/torch-venv/bin/python"))


def images(n: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)


# --- a TF1 re-implementation of slim's inception_resnet_v1 (davidsandberg/facenet) -----------


def _slim_network(x, embedding_size: int, rng: np.random.Generator):
    v1 = tf.compat.v1

    def var(name, shape, kind):
        if kind == "weights":
            fan_in = int(np.prod(shape[:-1]))
            value = rng.normal(0, np.sqrt(2.0 / fan_in), shape)
        elif kind == "moving_variance":
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.normal(0, 0.1, shape)
        return v1.get_variable(name, initializer=value.astype(np.float32))

    def conv(net, filters, kernel, scope, stride=1, padding="SAME", bn=True, relu=True):
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        with v1.variable_scope(scope):
            w = var("weights", [kh, kw, int(net.shape[-1]), filters], "weights")
            net = tf.nn.conv2d(net, w, [1, stride, stride, 1], padding)
            if bn:
                with v1.variable_scope("BatchNorm"):
                    beta = var("beta", [filters], "beta")
                    mean = var("moving_mean", [filters], "moving_mean")
                    variance = var("moving_variance", [filters], "moving_variance")
                net = tf.nn.batch_normalization(net, mean, variance, beta, None, 0.001)
            else:
                net = net + var("biases", [filters], "biases")
            return tf.nn.relu(net) if relu else net

    def block35(net, scope, scale, relu=True):
        with v1.variable_scope(scope):
            with v1.variable_scope("Branch_0"):
                t0 = conv(net, 32, 1, "Conv2d_1x1")
            with v1.variable_scope("Branch_1"):
                t1 = conv(conv(net, 32, 1, "Conv2d_0a_1x1"), 32, 3, "Conv2d_0b_3x3")
            with v1.variable_scope("Branch_2"):
                t2 = conv(net, 32, 1, "Conv2d_0a_1x1")
                t2 = conv(conv(t2, 32, 3, "Conv2d_0b_3x3"), 32, 3, "Conv2d_0c_3x3")
            mixed = tf.concat([t0, t1, t2], 3)
            up = conv(mixed, int(net.shape[-1]), 1, "Conv2d_1x1", bn=False, relu=False)
            net = net + scale * up
            return tf.nn.relu(net) if relu else net

    def block_2(net, scope, scale, width, k, relu=True):  # block17 (k=7) and block8 (k=3)
        with v1.variable_scope(scope):
            with v1.variable_scope("Branch_0"):
                t0 = conv(net, width, 1, "Conv2d_1x1")
            with v1.variable_scope("Branch_1"):
                t1 = conv(net, width, 1, "Conv2d_0a_1x1")
                t1 = conv(t1, width, [1, k], f"Conv2d_0b_1x{k}")
                t1 = conv(t1, width, [k, 1], f"Conv2d_0c_{k}x1")
            up = conv(
                tf.concat([t0, t1], 3), int(net.shape[-1]), 1, "Conv2d_1x1", bn=False, relu=False
            )
            net = net + scale * up
            return tf.nn.relu(net) if relu else net

    def pool(net):
        return tf.nn.max_pool2d(net, 3, 2, "VALID")

    with v1.variable_scope("InceptionResnetV1"):
        net = conv(x, 32, 3, "Conv2d_1a_3x3", stride=2, padding="VALID")
        net = conv(net, 32, 3, "Conv2d_2a_3x3", padding="VALID")
        net = conv(net, 64, 3, "Conv2d_2b_3x3")
        net = pool(net)
        net = conv(net, 80, 1, "Conv2d_3b_1x1", padding="VALID")
        net = conv(net, 192, 3, "Conv2d_4a_3x3", padding="VALID")
        net = conv(net, 256, 3, "Conv2d_4b_3x3", stride=2, padding="VALID")
        for i in range(1, 6):
            net = block35(net, f"Repeat/block35_{i}", 0.17)
        with v1.variable_scope("Mixed_6a"):
            with v1.variable_scope("Branch_0"):
                t0 = conv(net, 384, 3, "Conv2d_1a_3x3", stride=2, padding="VALID")
            with v1.variable_scope("Branch_1"):
                t1 = conv(conv(net, 192, 1, "Conv2d_0a_1x1"), 192, 3, "Conv2d_0b_3x3")
                t1 = conv(t1, 256, 3, "Conv2d_1a_3x3", stride=2, padding="VALID")
            net = tf.concat([t0, t1, pool(net)], 3)
        for i in range(1, 11):
            net = block_2(net, f"Repeat_1/block17_{i}", 0.10, 128, 7)
        with v1.variable_scope("Mixed_7a"):
            with v1.variable_scope("Branch_0"):
                t0 = conv(conv(net, 256, 1, "Conv2d_0a_1x1"), 384, 3, "Conv2d_1a_3x3", 2, "VALID")
            with v1.variable_scope("Branch_1"):
                t1 = conv(conv(net, 256, 1, "Conv2d_0a_1x1"), 256, 3, "Conv2d_1a_3x3", 2, "VALID")
            with v1.variable_scope("Branch_2"):
                t2 = conv(conv(net, 256, 1, "Conv2d_0a_1x1"), 256, 3, "Conv2d_0b_3x3")
                t2 = conv(t2, 256, 3, "Conv2d_1a_3x3", 2, "VALID")
            net = tf.concat([t0, t1, t2, pool(net)], 3)
        for i in range(1, 6):
            net = block_2(net, f"Repeat_2/block8_{i}", 0.20, 192, 3)
        net = block_2(net, "Block8", 1.0, 192, 3, relu=False)
        net = tf.reduce_mean(net, axis=[1, 2])
        with v1.variable_scope("Bottleneck"):
            w = var("weights", [1792, embedding_size], "weights")
            net = tf.matmul(net, w)
            with v1.variable_scope("BatchNorm"):
                beta = var("beta", [embedding_size], "beta")
                mean = var("moving_mean", [embedding_size], "moving_mean")
                variance = var("moving_variance", [embedding_size], "moving_variance")
            net = tf.nn.batch_normalization(net, mean, variance, beta, None, 0.001)
    return tf.nn.l2_normalize(net, 1, 1e-10)


@pytest.fixture(scope="module")
def slim_checkpoint(tmp_path_factory):
    """A davidsandberg-style checkpoint folder and the slim graph's embeddings of `images()`."""
    v1 = tf.compat.v1
    folder = tmp_path_factory.mktemp("20180402-114759")
    with tf.Graph().as_default():
        pixels = v1.placeholder(tf.float32, [None, SIZE, SIZE, 3])
        embeddings = _slim_network((pixels - 127.5) / 128.0, 512, np.random.default_rng(0))
        # what real training checkpoints also hold, which the converter must ignore
        v1.get_variable("global_step", initializer=np.int64(275))
        v1.get_variable("Logits/weights", initializer=np.zeros((512, 10), np.float32))
        slot = "InceptionResnetV1/Conv2d_1a_3x3/weights/RMSProp"
        v1.get_variable(slot, initializer=np.zeros((3, 3, 3, 32), np.float32))
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            expected = session.run(embeddings, {pixels: images().astype(np.float32)})
            v1.train.Saver().save(session, str(folder / "model-20180402-114759.ckpt"), 275)
    return folder, expected


def test_checkpoint_converts_to_the_same_network(slim_checkpoint, tmp_path):
    folder, expected = slim_checkpoint
    out = tmp_path / "20180402.keras"
    result = CliRunner().invoke(
        _cli(), ["convert", str(folder), "--out", str(out), "--preprocessing", "fixed",
                 "--input-size", str(SIZE), "--embedding-size", "512"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    model = FaceNet.load(out)
    assert (model.info.backbone, model.embedding_size, model.info.preprocessing) == (
        "inception_resnet_v1", 512, "fixed")  # fmt: skip
    np.testing.assert_allclose(model.embed(images(), detect=False), expected, atol=1e-4)


def test_checkpoint_errors_name_the_tensor(slim_checkpoint, tmp_path):
    from facenet.convert import checkpoint as ckpt
    from facenet.convert.base import TensorSource, build_inception, load_inception

    folder, _ = slim_checkpoint
    tensors = {k: np.asarray(v) for k, v in ckpt.read_checkpoint(folder).items()}
    info = ckpt.with_embedding_size(_info(), 512)
    model = build_inception(info, 512)

    def load(changed):
        source = TensorSource(changed, Path("ckpt"), ckpt.ignored)
        load_inception(model, source, ckpt.names, lambda a: a, lambda s: s)

    name = "InceptionResnetV1/Repeat_1/block17_3/Branch_1/Conv2d_0b_1x7/weights"
    with pytest.raises(ModelError, match=f"'{name}' is missing"):
        load({k: v for k, v in tensors.items() if k != name})
    with pytest.raises(ModelError, match=rf"'{name}' has shape \(7, 1, 128, 128\)"):
        load({**tensors, name: tensors[name].reshape(7, 1, 128, 128)})
    extra = "InceptionResnetV1/Repeat/block35_6/Conv2d_1x1/weights"
    with pytest.raises(ModelError, match=f"unexpected tensor.*'{extra}'"):
        load({**tensors, extra: np.zeros((1, 1, 96, 256), np.float32)})
    with pytest.raises(ModelError, match="does not record its preprocessing"):
        from facenet.convert import convert

        convert(folder, tmp_path / "x.keras")
    with pytest.raises(ModelError, match="not 128"):
        from facenet.convert import convert

        convert(folder, tmp_path / "x.keras", preprocessing="fixed", input_size=SIZE,
                embedding_size=128)  # fmt: skip


def test_h5_converts_with_the_given_preprocessing(tmp_path):
    from facenet.models import build_facenet, save_weights_h5

    network = build_facenet("mobilenet", (64, 64, 3), 128, alpha=0.25, preprocessing="prewhiten")
    save_weights_h5(network, tmp_path / "facenet_keras_weights.h5")
    out = tmp_path / "converted.keras"
    result = CliRunner().invoke(
        _cli(), ["convert", str(tmp_path / "facenet_keras_weights.h5"), "-o", str(out),
                 "--preprocessing", "prewhiten", "--input-size", "64"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    model = FaceNet.load(out)
    assert (model.info.preprocessing, model.info.alpha) == ("prewhiten", 0.25)
    x = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    expected = network(x.astype(np.float32)).numpy()
    np.testing.assert_allclose(model.embed(x, detect=False), expected, atol=1e-5)
    result = CliRunner().invoke(
        _cli(), ["convert", str(tmp_path / "facenet_keras_weights.h5"), "-o",
                 str(tmp_path / "again.keras")],
    )  # fmt: skip
    assert result.exit_code == 2 and "--preprocessing" in result.output


@pytest.fixture(scope="module")
def small_h5(tmp_path_factory) -> Path:
    from facenet.models import build_facenet, save_weights_h5

    network = build_facenet("mobilenet", (64, 64, 3), 128, alpha=0.25, preprocessing="prewhiten")
    return save_weights_h5(network, tmp_path_factory.mktemp("h5") / "weights.h5")


H5_OPTIONS = ["--preprocessing", "prewhiten", "--input-size", "64"]


@pytest.mark.parametrize("name", ["m.keras", "m.onnx"])
def test_convert_refuses_an_existing_output_without_force(small_h5, tmp_path, name):
    """An existing output was silently replaced, and only checked after the conversion."""
    out = tmp_path / name
    out.write_bytes(b"someone's model")
    args = ["convert", str(small_h5), "-o", str(out), *H5_OPTIONS]
    result = CliRunner().invoke(_cli(), args)
    assert result.exit_code == 2 and "--force" in result.output, result.output
    assert out.read_bytes() == b"someone's model"
    result = CliRunner().invoke(_cli(), [*args, "--force"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() != b"someone's model"


@pytest.mark.parametrize("name", ["m.keras", "m.onnx"])
def test_convert_into_an_unwritable_place_is_one_line_error(small_h5, name):
    """/proc takes no new file: `convert -o /proc/m.keras` ended in save_model's traceback
    (FileNotFoundError from mkstemp), exit 1, after the whole conversion."""
    out = f"/proc/facenet-test-{name}"
    result = CliRunner().invoke(_cli(), ["convert", str(small_h5), "-o", out, *H5_OPTIONS])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        f"Error: cannot write {out} (No such file or directory)"
    ], result.output


def test_convert_upper_case_keras_suffix_is_one_line_error(small_h5, tmp_path):
    """`-o M.KERAS` passed the suffix check, then save_model raised a ValueError traceback."""
    out = tmp_path / "M.KERAS"
    result = CliRunner().invoke(_cli(), ["convert", str(small_h5), "-o", str(out), *H5_OPTIONS])
    assert result.exit_code == 2 and ".keras" in result.output, result.output
    assert "Traceback" not in result.output and not out.exists()


@pytest.mark.parametrize(("name", "extra"), [("m.keras", "tf"), ("m.onnx", "tf,export")])
def test_convert_without_tensorflow_is_one_line_naming_the_extra(tmp_path, name, extra):
    """On the light install convert died in a ModuleNotFoundError traceback (exit status 1)
    from deep inside the converter; now one line, exit status 2, before any weights are read."""
    (tmp_path / "w.h5").write_bytes(b"not read")
    block = "import sys\nsys.modules['tensorflow'] = sys.modules['keras'] = None\n"
    code = block + "from facenet.cli import main\nmain(prog_name='facenet')\n"
    args = ["convert", "w.h5", "-o", name, "--preprocessing", "prewhiten"]
    result = subprocess.run([sys.executable, "-c", code, *args], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.strip() == (
        f"Error: converting needs tensorflow and keras: pip install 'facenet-keras[{extra}]'"
    )
    assert not (tmp_path / name).exists()


# --- facenet-pytorch ---------------------------------------------------------------------------

TORCH_SCRIPT = """
import sys, numpy as np, torch
from facenet_pytorch import InceptionResnetV1
torch.manual_seed(0)
model = InceptionResnetV1().eval()
with torch.no_grad():
    for module in model.modules():
        if isinstance(module, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.uniform_(0.5, 1.5)   # gamma != 1: the converter must fold it
            module.bias.normal_(0, 0.1)
    pixels = torch.from_numpy(np.load(sys.argv[1])).permute(0, 3, 1, 2).float()
    embeddings = model((pixels - 127.5) / 128.0)   # fixed_image_standardization
np.save(sys.argv[2], embeddings.numpy())
torch.save(model.state_dict(), sys.argv[3])
"""


@pytest.fixture(scope="module")
def pytorch_state_dict(tmp_path_factory):
    if not TORCH_PYTHON.is_file():
        pytest.skip(f"no PyTorch venv with facenet-pytorch at {TORCH_PYTHON}")
    check = subprocess.run([str(TORCH_PYTHON), "-c", "import facenet_pytorch"], capture_output=True)
    if check.returncode:
        pytest.skip("facenet-pytorch is not importable in the PyTorch venv")
    folder = tmp_path_factory.mktemp("pytorch")
    np.save(folder / "images.npy", images())
    (folder / "make.py").write_text(TORCH_SCRIPT)
    done = subprocess.run(
        [str(TORCH_PYTHON), str(folder / "make.py"), str(folder / "images.npy"),
         str(folder / "expected.npy"), str(folder / "vggface2.pt")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return folder / "vggface2.pt", np.load(folder / "expected.npy")


def test_pytorch_state_dict_converts_to_the_same_network(pytorch_state_dict, tmp_path):
    path, expected = pytorch_state_dict
    try:
        import torch  # noqa: F401
    except ImportError:
        # no torch in this venv: convert the same tensors saved as .npz by the torch venv
        npz = tmp_path / "vggface2.npz"
        code = ("import sys, numpy as np, torch; s = torch.load(sys.argv[1]); "
                "np.savez(sys.argv[2], **{k: v.numpy() for k, v in s.items()})")  # fmt: skip
        subprocess.run([str(TORCH_PYTHON), "-c", code, str(path), str(npz)], check=True)
        path = npz
    out = tmp_path / "vggface2.keras"
    result = CliRunner().invoke(
        _cli(), ["convert", str(path), "-o", str(out), "--input-size", str(SIZE)]
    )
    assert result.exit_code == 0, result.output
    model = FaceNet.load(out)
    assert (model.embedding_size, model.info.preprocessing) == (512, "fixed")
    np.testing.assert_allclose(model.embed(images(), detect=False), expected, atol=1e-4)


def test_pytorch_mapping_without_torch():
    from facenet.convert.pytorch import convert_state_dict, module_name

    assert module_name("Block35_1_Branch_2_Conv2d_0c_3x3") == "repeat_1.0.branch2.2"
    assert module_name("Block17_10_Conv2d_1x1") == "repeat_2.9.conv2d"
    assert module_name("Block8_5_Branch_1_Conv2d_0c_3x1") == "repeat_3.4.branch1.2"
    assert module_name("Block8_6_Branch_0_Conv2d_1x1") == "block8.branch0"
    assert module_name("Mixed_7a_Branch_2_Conv2d_1a_3x3") == "mixed_7a.branch2.2"
    with pytest.raises(ModelError, match="'last_linear.weight' is missing"):
        convert_state_dict({"conv2d_1a.conv.weight": np.zeros((32, 3, 3, 3))}, _info())
    tensors = {"last_linear.weight": np.zeros((512, 1792), np.float32)}
    with pytest.raises(ModelError, match="'conv2d_1a.conv.weight' is missing"):
        convert_state_dict(tensors, _info())


def _info():
    from facenet.metadata import ModelInfo

    return ModelInfo(backbone="inception_resnet_v1", input_size=SIZE, preprocessing="fixed")


def _cli():
    from facenet.cli import main

    return main


def test_convert_reports_json_friendly_info(slim_checkpoint):  # the stored ModelInfo is JSON
    folder, _ = slim_checkpoint
    from facenet.convert import detect_source

    assert detect_source(folder) == "checkpoint"
    assert detect_source(Path("x.pth")) == "pytorch"
    assert json.loads(_info().to_json())["backbone"] == "inception_resnet_v1"


@pytest.mark.parametrize("content", [b"", b"not a zip of arrays", None])
def test_unreadable_npz_is_a_one_line_error(tmp_path, content):
    """An empty file (np.load's EOFError, which click would turn into "Aborted!"), text, or an
    .npz of pickled objects: one line naming the file, exit status 2."""
    bad = tmp_path / "weights.npz"
    if content is None:
        np.savez(bad, w=np.array([{"a": 1}], dtype=object))
    else:
        bad.write_bytes(content)
    result = CliRunner().invoke(_cli(), ["convert", str(bad), "--out", str(tmp_path / "m.keras")])
    assert result.exit_code == 2, result.output
    assert "not a readable .npz" in result.output and "Aborted" not in result.output
    assert not (tmp_path / "m.keras").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["", "-o", "m.keras"], "Error: the weights path is empty"),
        (["weights.h5", "-o", ""], "Error: the output path is empty"),
    ],
)
def test_convert_empty_paths_are_named_as_such(tmp_path, monkeypatch, args, message):
    """An empty SRC ("$SRC" unset) was taken as the current folder: 'Error: .: the file does
    not record its preprocessing'; an empty --out: 'Error: .: the output must be a .keras'."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "weights.h5").write_bytes(b"not read")
    result = CliRunner().invoke(_cli(), ["convert", *args])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [message + " (an unset shell variable?)"]
