"""Convert the pretrained MTCNN weights (numpy pickles) into three ONNX graphs for the package.

Build-time only (needs the `onnx` package; the package itself needs only onnxruntime):

    python tools/convert_mtcnn.py /work/shared/models/mtcnn facenet/detect/weights

The sources are davidsandberg/facenet's `det1.npy`, `det2.npy`, `det3.npy` (P-Net, R-Net, O-Net
of Zhang et al. 2016, from the Caffe originals): `{layer: {"weights"|"biases"|"alpha": array}}`,
convolution kernels H x W x in x out, fully connected layers in x out. Those networks were trained
on images with x and y swapped. Instead of transposing every input and output at run time, the
swap is folded into the weights here: a convolution over a transposed image equals the transposed
convolution (kernel with its two spatial axes exchanged) over the upright image, max pooling is
symmetric, and the first fully connected layer's rows are permuted to the upright NCHW flattening.
The graphs therefore take upright images and return upright results:

    pnet.onnx  image (N, H, W, 3) float 0..255 -> prob (N, H', W'), reg (N, 4, H', W')
               H' = ceil((H - 2) / 2) - 4; output cell (i, j) sees pixels
               [2i, 2i+12) x [2j, 2j+12)
    rnet.onnx  image (N, 24, 24, 3)             -> prob (N,), reg (N, 4)
    onet.onnx  image (N, 48, 48, 3)             -> prob (N,), reg (N, 4), landmarks (N, 10)

reg is (dx1, dy1, dx2, dy2) as fractions of the box width/height; landmarks are five x fractions
then five y fractions of the box (left eye, right eye, nose, left mouth, right mouth). Each graph
normalises its input with (x - 127.5) / 128 itself. The MIT licence of the weights is copied
beside them.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def load_npy(path: Path) -> dict[str, dict[str, np.ndarray]]:
    return np.load(path, allow_pickle=True, encoding="latin1").item()


class GraphBuilder:
    """A tiny helper that chains ONNX nodes and collects their initialisers."""

    def __init__(self, name: str):
        self.name = name
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], name: str | None = None, n_out=1, **attrs):
        self.count += 1
        base = name or f"{op_type.lower()}_{self.count}"
        outputs = [base] if n_out == 1 else [f"{base}_{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=base, **attrs))
        return outputs[0] if n_out == 1 else outputs

    def preprocess(self, x: str) -> str:
        x = self.op("Transpose", [x], perm=[0, 3, 1, 2])
        x = self.op("Sub", [x, self.const("mean", np.array(127.5, np.float32))])
        return self.op("Mul", [x, self.const("scale", np.array(0.0078125, np.float32))])

    def conv(self, x: str, layer: dict, name: str) -> str:
        # Stored H x W x in x out for the transposed image; upright kernel = spatial axes swapped:
        # ONNX wants out x in x kH x kW with kH along the upright y, i.e. the stored W axis.
        kernel = np.ascontiguousarray(layer["weights"].transpose(3, 2, 1, 0), np.float32)
        w = self.const(f"{name}.weight", kernel)
        b = self.const(f"{name}.bias", layer["biases"].astype(np.float32))
        return self.op("Conv", [x, w, b], name=name, kernel_shape=list(kernel.shape[2:]))

    def prelu(self, x: str, layer: dict, name: str, spatial: bool) -> str:
        alpha = layer["alpha"].astype(np.float32)
        alpha = alpha.reshape(-1, 1, 1) if spatial else alpha
        return self.op("PRelu", [x, self.const(f"{name}.alpha", alpha)], name=name)

    def pool(self, x: str, size: int, same: bool) -> str:
        pads = {"auto_pad": "SAME_UPPER"} if same else {}
        return self.op("MaxPool", [x], kernel_shape=[size, size], strides=[2, 2], **pads)

    def fc(self, x: str, layer: dict, name: str, chw: tuple[int, int, int] | None = None) -> str:
        weights = layer["weights"].astype(np.float32)
        if chw is not None:
            # Rows follow TF's NHWC flattening of the transposed feature map: (x, y, c).
            # Reorder them to the upright NCHW flattening (c, y, x).
            c, h, w = chw
            weights = weights.reshape(w, h, c, -1).transpose(2, 1, 0, 3).reshape(c * h * w, -1)
            x = self.op("Flatten", [x], axis=1)
        w_name = self.const(f"{name}.weight", np.ascontiguousarray(weights))
        b_name = self.const(f"{name}.bias", layer["biases"].astype(np.float32))
        return self.op("Gemm", [x, w_name, b_name], name=name)

    def face_prob(self, logits: str) -> str:
        prob = self.op("Softmax", [logits], axis=1)
        return self.op(
            "Gather", [prob, self.const("one", np.array(1, np.int64))], name="prob", axis=1
        )

    def model(self, inputs, outputs) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, self.name, inputs, outputs, self.inits)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="facenet tools/convert_mtcnn.py",
        )
        model.ir_version = 8
        model.doc_string = (
            f"MTCNN {self.name} (Zhang et al. 2016), weights from davidsandberg/facenet "
            "(MIT licence, "
            "see LICENSE.md); x/y swap of the Caffe originals folded into the weights."
        )
        onnx.checker.check_model(model)
        return model


def image_input(h, w) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", h, w, 3])


def build_pnet(p: dict) -> onnx.ModelProto:
    g = GraphBuilder("pnet")
    x = g.preprocess("image")
    x = g.prelu(g.conv(x, p["conv1"], "conv1"), p["PReLU1"], "prelu1", True)
    x = g.pool(x, 2, same=True)
    x = g.prelu(g.conv(x, p["conv2"], "conv2"), p["PReLU2"], "prelu2", True)
    x = g.prelu(g.conv(x, p["conv3"], "conv3"), p["PReLU3"], "prelu3", True)
    g.face_prob(g.conv(x, p["conv4-1"], "conv4_1"))
    g.conv(x, p["conv4-2"], "reg")
    out = [
        helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", "h", "w"]),
        helper.make_tensor_value_info("reg", TensorProto.FLOAT, ["N", 4, "h", "w"]),
    ]
    return g.model([image_input("H", "W")], out)


def build_rnet(p: dict) -> onnx.ModelProto:
    g = GraphBuilder("rnet")
    x = g.preprocess("image")
    x = g.prelu(g.conv(x, p["conv1"], "conv1"), p["prelu1"], "prelu1", True)
    x = g.pool(x, 3, same=True)
    x = g.prelu(g.conv(x, p["conv2"], "conv2"), p["prelu2"], "prelu2", True)
    x = g.pool(x, 3, same=False)
    x = g.prelu(g.conv(x, p["conv3"], "conv3"), p["prelu3"], "prelu3", True)
    x = g.prelu(g.fc(x, p["conv4"], "fc4", chw=(64, 3, 3)), p["prelu4"], "prelu4", False)
    g.face_prob(g.fc(x, p["conv5-1"], "fc5_1"))
    g.fc(x, p["conv5-2"], "reg")
    out = [
        helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N"]),
        helper.make_tensor_value_info("reg", TensorProto.FLOAT, ["N", 4]),
    ]
    return g.model([image_input(24, 24)], out)


def build_onet(p: dict) -> onnx.ModelProto:
    g = GraphBuilder("onet")
    x = g.preprocess("image")
    x = g.prelu(g.conv(x, p["conv1"], "conv1"), p["prelu1"], "prelu1", True)
    x = g.pool(x, 3, same=True)
    x = g.prelu(g.conv(x, p["conv2"], "conv2"), p["prelu2"], "prelu2", True)
    x = g.pool(x, 3, same=False)
    x = g.prelu(g.conv(x, p["conv3"], "conv3"), p["prelu3"], "prelu3", True)
    x = g.pool(x, 2, same=True)
    x = g.prelu(g.conv(x, p["conv4"], "conv4"), p["prelu4"], "prelu4", True)
    x = g.prelu(g.fc(x, p["conv5"], "fc5", chw=(128, 3, 3)), p["prelu5"], "prelu5", False)
    g.face_prob(g.fc(x, p["conv6-1"], "fc6_1"))
    g.fc(x, p["conv6-2"], "reg")
    g.fc(x, p["conv6-3"], "landmarks")
    out = [
        helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N"]),
        helper.make_tensor_value_info("reg", TensorProto.FLOAT, ["N", 4]),
        helper.make_tensor_value_info("landmarks", TensorProto.FLOAT, ["N", 10]),
    ]
    return g.model([image_input(48, 48)], out)


def convert(src: Path, dst: Path) -> list[Path]:
    dst.mkdir(parents=True, exist_ok=True)
    written = []
    for number, name, build in (
        (1, "pnet", build_pnet),
        (2, "rnet", build_rnet),
        (3, "onet", build_onet),
    ):
        model = build(load_npy(src / f"det{number}.npy"))
        path = dst / f"{name}.onnx"
        onnx.save(model, path)
        written.append(path)
    licence = src / "LICENSE.md"
    if licence.exists():
        shutil.copyfile(licence, dst / "LICENSE.md")
        written.append(dst / "LICENSE.md")
    return written


def main() -> None:
    root = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", nargs="?", type=Path, default=root.parent / "shared/models/mtcnn")
    parser.add_argument("dst", nargs="?", type=Path, default=root / "facenet/detect/weights")
    args = parser.parse_args()
    for path in convert(args.src, args.dst):
        print(f"{path}  {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
