"""dlib's 128-d face ResNet (`dlib_face_recognition_resnet_model_v1.dat`): parse and fold.

dlib's model file is its own binary serialization of the network; this reads it with numpy only
(format from dlib 20.0's dnn/core.h, layers.h, input.h, loss.h, serialize.h, cuda/tensor.h),
following the template of dlib's `dnn_face_recognition_ex.cpp`:

    residual<block,N,BN,S>      = add_prev1<block<N,BN,1,tag1<S>>>
    residual_down<block,N,BN,S> = add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,BN,2,tag1<S>>>>>>
    block<N,BN,stride,S>        = BN<con<N,3,3,1,1,relu<BN<con<N,3,3,stride,stride,S>>>>>
    ares<N,S> = relu<residual<block,N,affine,S>>;  ares_down<N,S> = relu<residual_down<...>>
    level0 = ares_down<256>; level1 = ares<256>x2 + ares_down<256>; level2 = ares<128>x2 +
    ares_down<128>; level3 = ares<64>x3 + ares_down<64>; level4 = ares<32>x3
    net = loss_metric<fc_no_bias<128, avg_pool_everything<level0..level4<
          max_pool<3,3,2,2, relu<affine<con<32,7,7,2,2, input_rgb_image_sized<150>>>>>>>>>

`folded_weights` folds the affine layers (frozen batch norm) and the input normalisation
((pixel - channel mean) / 256) into the convolutions, so the network takes raw pixels.
`facenet.models.dlib_resnet` builds the Keras network from the result.

The model files are public domain (Davis King, dlib-models); PyPI's `face_recognition_models`
ships a copy: `face_recognition_models.face_recognition_model_location()`.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..errors import ModelError, ModelNotFoundError

#: dlib's chip side; the network's input size.
CHIP_SIZE = 150


class _Stream:
    def __init__(self, data: bytes):
        self.f = io.BytesIO(data)

    def byte(self) -> int:
        b = self.f.read(1)
        if not b:
            raise EOFError("unexpected end of dlib stream")
        return b[0]

    def int(self) -> int:
        ctrl = self.byte()
        n = ctrl & 0x0F
        value = int.from_bytes(self.f.read(n), "little") if n else 0
        return -value if ctrl & 0x80 else value

    def float(self) -> float:
        ctrl = self.f.read(1)
        self.f.seek(-1, 1)
        if ctrl[0] & 0x70:
            raise ValueError("old ASCII float format not supported")
        mantissa, exponent = self.int(), self.int()
        return float(mantissa) * 2.0**exponent

    def bool(self) -> bool:
        ch = self.byte()
        if ch not in (ord("0"), ord("1")):
            raise ValueError(f"bad bool byte {ch}")
        return ch == ord("1")

    def str(self) -> str:
        n = self.int()
        return self.f.read(n).decode("ascii")

    def tensor(self) -> np.ndarray:
        if self.int() != 2:
            raise ValueError("unexpected tensor version")
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        data = np.frombuffer(self.f.read(4 * count), dtype="<f4").astype(np.float32)
        return data.reshape(shape)

    def alias(self) -> tuple:
        if self.int() != 1:
            raise ValueError("unexpected alias_tensor version")
        return tuple(self.int() for _ in range(4))


def _template() -> list[tuple]:
    """The network top (after the loss) to bottom: ("layer", kind[, tag]) / ("tag"|"skip", id)."""

    def block(n, stride):  # top to bottom
        return [
            ("layer", "affine"),
            ("layer", "con", n, 1),
            ("layer", "relu"),
            ("layer", "affine"),
            ("layer", "con", n, stride),
        ]

    def ares(n):
        return [("layer", "relu"), ("layer", "add_prev", 1), *block(n, 1), ("tag", 1)]

    def ares_down(n):
        return [
            ("layer", "relu"),
            ("layer", "add_prev", 2),
            ("layer", "avg_pool"),
            ("skip", 1),
            ("tag", 2),
            *block(n, 2),
            ("tag", 1),
        ]

    nodes = [("layer", "fc"), ("layer", "avg_pool")]
    nodes += ares_down(256)
    nodes += ares(256) + ares(256) + ares_down(256)
    nodes += ares(128) + ares(128) + ares_down(128)
    nodes += ares(64) + ares(64) + ares(64) + ares_down(64)
    nodes += ares(32) + ares(32) + ares(32)
    nodes += [
        ("layer", "max_pool"),
        ("layer", "relu"),
        ("layer", "affine"),
        ("layer", "con", 32, 2),
    ]
    return nodes


def _con(s: _Stream, version: str, node: tuple, out: dict) -> None:
    if version not in ("con_4", "con_5", "con_6"):
        raise ValueError(f"con: unexpected version {version}")
    params = s.tensor()
    out["num_filters"] = s.int()
    out["nr"], out["nc"] = s.int(), s.int()
    out["stride"] = (s.int(), s.int())
    out["padding"] = (s.int(), s.int())
    filters, biases = s.alias(), s.alias()
    for _ in range(4):
        s.float()
    if version in ("con_5", "con_6"):
        out["use_bias"] = s.bool()
    if version == "con_6":
        out["use_relu"] = s.bool()
    flat = params.reshape(-1)
    nf = int(np.prod(filters))
    out["filters"] = flat[:nf].reshape(filters)  # (num_filters, k, nr, nc)
    out["biases"] = flat[nf : nf + int(np.prod(biases))].reshape(-1)
    if out["num_filters"] != node[2] or out["stride"] != (node[3], node[3]):
        raise ValueError(f"layer mismatch: {node} vs {out['num_filters']} / {out['stride']}")


def _affine(s: _Stream, version: str, node: tuple, out: dict) -> None:
    if version not in ("affine_", "affine_2"):
        raise ValueError(f"affine: unexpected version {version} (bn_ not handled)")
    params = s.tensor().reshape(-1)
    gamma, beta = s.alias(), s.alias()
    out["mode"] = s.int()
    if version == "affine_2":
        out["disabled"] = s.bool()
    k = int(np.prod(gamma))
    out["gamma"], out["beta"] = params[:k], params[k : k + int(np.prod(beta))]


def _relu(s: _Stream, version: str, node: tuple, out: dict) -> None:
    if version == "relu_2":
        out["disabled"] = s.bool()
    elif version != "relu_":
        raise ValueError(f"relu: unexpected version {version}")


def _pool(s: _Stream, version: str, node: tuple, out: dict) -> None:
    kind = node[1]
    if version != f"{kind}_2":
        raise ValueError(f"{kind}: unexpected version {version}")
    out["nr"], out["nc"] = s.int(), s.int()
    out["stride"] = (s.int(), s.int())
    out["padding"] = (s.int(), s.int())


def _add_prev(s: _Stream, version: str, node: tuple, out: dict) -> None:
    if version != "add_prev_":
        raise ValueError(f"add_prev: unexpected version {version}")
    out["tag"] = node[2]


def _fc(s: _Stream, version: str, node: tuple, out: dict) -> None:
    if version not in ("fc_2", "fc_3"):
        raise ValueError(f"fc: unexpected version {version}")
    out["num_outputs"], out["num_inputs"] = s.int(), s.int()
    params = s.tensor().reshape(-1)
    weights = s.alias()
    s.alias()  # the biases' shape: dlib's face network is fc_no_bias
    out["bias_mode"] = s.int()
    for _ in range(4):
        s.float()
    if version == "fc_3":
        out["use_bias"] = s.bool()
    nw = int(np.prod(weights))
    out["weights"] = params[:nw].reshape(out["num_inputs"], out["num_outputs"])


#: How each layer kind's parameters follow its version string in the file.
_READERS = {
    "con": _con,
    "affine": _affine,
    "relu": _relu,
    "max_pool": _pool,
    "avg_pool": _pool,
    "add_prev": _add_prev,
    "fc": _fc,
}


def _details(s: _Stream, node: tuple) -> dict:
    kind = node[1]
    version = s.str()
    out: dict = {"kind": kind, "version": version}
    reader = _READERS.get(kind)
    if reader is not None:
        reader(s, version, node, out)
    return out


def read_dlib_net(path: str | Path) -> tuple[dict, list[dict]]:
    """(input layer {"mean": (r, g, b), "size"}, layers bottom -> top incl. tag/skip markers)."""
    s = _Stream(Path(path).read_bytes())
    if s.int() != 1:
        raise ValueError("not a dlib add_loss_layer")
    loss = s.str()
    if loss == "loss_metric_2":
        s.float(), s.float()
    elif loss != "loss_metric_":
        raise ValueError(f"unexpected loss {loss}")
    nodes = _template()
    layers: list[dict] = []
    inp: dict = {}

    def parse(i: int) -> None:
        node = nodes[i]
        if node[0] in ("tag", "skip"):
            if s.int() != 1:
                raise ValueError(f"{node}: unexpected version")
            parse(i + 1)
            layers.append({"kind": node[0], "id": node[1]})
            return
        version = s.int()
        bottom = i == len(nodes) - 1
        if bottom:
            name = s.str()
            if not name.startswith("input_rgb_image"):
                raise ValueError(f"unexpected input layer {name}")
            inp["mean"] = (s.float(), s.float(), s.float())
            if name == "input_rgb_image_sized":
                inp["size"] = (s.int(), s.int())
        else:
            parse(i + 1)
        layers.append(_details(s, node))
        s.bool(), s.bool(), s.bool()
        s.tensor(), s.tensor()  # x_grad, cached_output
        if bottom:
            s.tensor()  # grad_final
            if version >= 3:
                s.int()
        elif version == 2:
            s.tensor()  # params_grad

    parse(0)
    rest = len(s.f.read())
    if rest:
        raise ValueError(f"{rest} bytes left after parsing")
    return inp, layers


def folded_weights(path: str | Path) -> tuple[list[dict], np.ndarray]:
    """Layers with conv+affine (+ input normalisation) folded; numpy only (cacheable)."""
    inp, layers = read_dlib_net(path)
    mean = np.asarray(inp["mean"], np.float32)
    out: list[dict] = []
    first = True
    i = 0
    while i < len(layers):
        L = layers[i]
        if L["kind"] == "con":
            w = L["filters"].transpose(2, 3, 1, 0).astype(np.float64)  # (nr, nc, k, n)
            b = L["biases"].astype(np.float64) if L.get("use_bias", True) else np.zeros(w.shape[-1])
            if first:  # x_norm = (x - mean) / 256, and the first conv has no padding
                if L["padding"] != (0, 0):
                    raise ValueError("cannot fold the input normalisation through padding")
                b = b - np.einsum("hwkn,k->n", w, mean) / 256.0
                w = w / 256.0
                first = False
            if i + 1 < len(layers) and layers[i + 1]["kind"] == "affine":
                a = layers[i + 1]
                if a.get("disabled"):
                    raise ValueError("disabled affine layer")
                w = w * a["gamma"]
                b = b * a["gamma"] + a["beta"]
                i += 1
            out.append(
                {
                    "kind": "con",
                    "w": w.astype(np.float32),
                    "b": b.astype(np.float32),
                    "stride": L["stride"],
                    "padding": L["padding"],
                }
            )
        elif L["kind"] == "affine":
            raise ValueError("affine layer not after a convolution")
        elif L["kind"] == "relu":
            if L.get("disabled"):
                raise ValueError("disabled relu")
            out.append({"kind": "relu"})
        elif L["kind"] in ("max_pool", "avg_pool"):
            out.append({k: L[k] for k in ("kind", "nr", "nc", "stride", "padding")})
        elif L["kind"] == "fc":
            out.append({"kind": "fc", "w": L["weights"].astype(np.float32)})
        else:  # tag, skip, add_prev
            out.append(dict(L))
        i += 1
    return out, mean


def read_folded(path: str | Path) -> list[dict]:
    """`folded_weights` with a one-line ModelError for a missing or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise ModelNotFoundError(f"{path}: no such dlib model file")
    try:
        specs, _ = folded_weights(path)
    except (ValueError, EOFError, KeyError) as exc:
        raise ModelError(
            f"{path}: not dlib's face recognition ResNet "
            f"(dlib_face_recognition_resnet_model_v1.dat): {exc}"
        ) from None
    return specs
