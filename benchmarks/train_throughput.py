"""Training throughput on this machine: images/s of the train step and of the input pipeline.

MobileNet FaceNet (alpha 1.0 by default) at 160 and 112 px, for each mining strategy, with the
softmax head (loss triplet+ce), on P x K batches of CelebA. The input pipeline's own rate
(decode + augment + batch, no model) is measured in the same run. Medians over timed steps.

    .venv/bin/python benchmarks/train_throughput.py [--data DIR] [--steps 20] [--sizes 160 112]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "celeba"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--sizes", type=int, nargs="+", default=[160, 112])
    parser.add_argument("--mining", nargs="+", default=["batch_all", "batch_hard", "semi_hard"])
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--batch-p", type=int, default=8)
    parser.add_argument("--batch-k", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()

    import keras

    from facenet.data import PKSampler, scan_folder, train_dataset
    from facenet.data.pipeline import Augment, pipeline_throughput
    from facenet.models import build_facenet
    from facenet.train import TrainConfig
    from facenet.train.optim import WarmupSchedule, make_optimizer
    from facenet.train.trainer import _train_step

    data = scan_folder(args.data, min_images=args.batch_k, max_identities=200)
    steps = args.steps + args.warmup
    sampler = PKSampler(data.labels, args.batch_p, args.batch_k, seed=0)
    batches = sampler.epoch_batches(0, steps + 5)
    batch = sampler.batch_size
    strategy = tf.distribute.get_strategy()
    print(f"data: {data.describe()}; batch {args.batch_p}x{args.batch_k} = {batch}; "
          f"alpha {args.alpha}; CPU threads {os.cpu_count()}")  # fmt: skip
    rows = []
    for size in args.sizes:

        def dataset(size=size):
            return train_dataset(data.paths, data.labels, batches, image_size=size,
                                 augment=Augment(greyscale=0.1), seed=0)  # fmt: skip

        pipe = pipeline_throughput(dataset(), steps=min(steps, len(batches) - 2), warmup=2)
        keras.utils.set_random_seed(0)
        model = build_facenet("mobilenet", (size, size, 3), 128, num_classes=data.num_classes,
                              alpha=args.alpha)  # fmt: skip
        for mining in args.mining:
            config = TrainConfig(data=args.data, input_size=size, mining=mining,
                                 loss="triplet+ce", alpha=args.alpha)  # fmt: skip
            optimizer = make_optimizer(config, WarmupSchedule(1e-3, 1000))
            optimizer.build(model.trainable_variables)
            step = _train_step(model, optimizer, config, strategy)
            times = []
            start = time.perf_counter()
            for i, (images, labels) in enumerate(dataset()):
                if i >= steps:
                    break
                float(step(images, labels)["loss"])
                now = time.perf_counter()
                if i >= args.warmup:
                    times.append(now - start)
                start = now
            rate = batch / float(np.median(times))
            rows.append((size, mining, rate, pipe["median_images_per_s"]))
            print(f"{size} px  {mining:10s}  train {rate:7.1f} img/s   "
                  f"pipeline {pipe['median_images_per_s']:7.1f} img/s", flush=True)  # fmt: skip
    print()
    print("| input | mining | train images/s (median) | pipeline-only images/s (median) |")
    print("|---|---|---|---|")
    for size, mining, rate, pipe_rate in rows:
        print(f"| {size} px | {mining} | {rate:.1f} | {pipe_rate:.1f} |")


if __name__ == "__main__":
    main()
