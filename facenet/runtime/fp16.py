"""Half-size ONNX files: weights stored as float16, computed in float32.

ONNX Runtime's CPU kernels are float32, so a network converted to float16 compute runs slower
on a CPU; storing only the weights as float16, each behind a Cast to float32 that the runtime
folds into a constant when the session opens, halves the file and keeps float32 speed. The
accuracy cost is measured per model before shipping (docs/MODEL_CARD.md). Needs `onnx`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def store_weights_fp16(src: str | os.PathLike, dst: str | os.PathLike, min_size: int = 256) -> Path:
    """Write `src` to `dst` with every float32 initializer of >= `min_size` values in float16."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    kept, casts = [], []
    for init in graph.initializer:
        array = numpy_helper.to_array(init)
        if array.dtype != np.float32 or array.size < min_size:
            kept.append(init)
            continue
        half = numpy_helper.from_array(array.astype(np.float16), f"{init.name}__fp16")
        kept.append(half)
        casts.append(
            helper.make_node(
                "Cast",
                [half.name],
                [init.name],
                to=onnx.TensorProto.FLOAT,
                name=f"{init.name}__cast",
            )
        )
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    dst = Path(dst)
    tmp = dst.with_name(f".tmp-{dst.name}")
    onnx.save(model, str(tmp))
    os.replace(tmp, dst)
    return dst
