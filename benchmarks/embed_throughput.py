"""Images/s of `FaceNet.embed` against the raw compiled graph of the same network.

Both backbones at 160x160, batch 1 and 32, on in-memory uint8 arrays (no detection), run side
by side in one process; prints medians of several timed rounds and the API/raw ratio.

    python benchmarks/embed_throughput.py [--rounds 5] [--backbones mobilenet inception_resnet_v1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from facenet import FaceNet  # noqa: E402
from facenet.metadata import ModelInfo  # noqa: E402
from facenet.models import build_facenet  # noqa: E402


def rate(fn, images: int, rounds: int, min_seconds: float) -> float:
    fn()  # warm-up: tracing and first-call allocation
    rates = []
    for _ in range(rounds):
        count, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < min_seconds or count == 0:
            fn()
            count += images
        rates.append(count / elapsed)
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0, help="minimum time per round")
    parser.add_argument("--backbones", nargs="+", default=["mobilenet", "inception_resnet_v1"])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'backbone':22}{'batch':>6}{'raw img/s':>12}{'embed img/s':>13}{'ratio':>8}")
    for backbone in args.backbones:
        network = build_facenet(backbone)
        model = FaceNet.from_keras(network, ModelInfo(backbone=backbone))
        spec = tf.TensorSpec([None, 160, 160, 3], tf.float32)
        raw_graph = tf.function(lambda x, n=network: n(x, training=False), input_signature=[spec])
        for batch in (1, 32):
            crops = rng.integers(0, 256, (batch, 160, 160, 3), dtype=np.uint8)
            as_float = crops.astype(np.float32)

            def run_raw(graph=raw_graph, x=as_float):
                return graph(x).numpy()

            def run_api(model=model, x=crops, batch=batch):
                return model.embed(x, detect=False, batch_size=batch)

            raw = rate(run_raw, batch, args.rounds, args.seconds)
            api = rate(run_api, batch, args.rounds, args.seconds)
            print(f"{backbone:22}{batch:>6}{raw:>12.1f}{api:>13.1f}{api / raw:>8.2f}")


if __name__ == "__main__":
    main()
