"""The dlib teacher's LFW View 1 accuracy on crops cut by one of our alignment modes.

Checks that an alignment mode gives the teacher the framing it expects (the "chip" mode's
template is fitted to dlib's chips: `tools/fit_chip_template.py`). The crops are those of
`facenet align` on the View 1 photos, resized to the teacher's 150 px; descriptors are
L2-normalised, with and without flip averaging; 10-fold squared-L2 accuracy on pairsDevTest.

    facenet align /work/data-cache/lfw-view1-src /work/data-cache/lfw-view1-chip150 \
        --size 150 --mode chip
    python tools/teacher_on_crops.py /work/data-cache/lfw-view1-chip150
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dlib_resnet import CHIP_SIZE, build_keras  # noqa: E402

from facenet.evaluate.protocols import read_lfw_pairs  # noqa: E402
from facenet.evaluate.verification import evaluate_embeddings  # noqa: E402

LFW = Path(__file__).resolve().parents[2] / "shared" / "data" / "lfw"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("crops", type=Path, help="`facenet align` output of the View 1 photos")
    parser.add_argument("--lfw", type=Path, default=LFW)
    parser.add_argument("--pairs", default="pairsDevTest.txt")
    args = parser.parse_args()

    import tensorflow as tf

    pairs = read_lfw_pairs(args.lfw / args.pairs, args.lfw / "lfw-deepfunneled")
    paths = sorted(set(pairs.paths_a) | set(pairs.paths_b))
    size = (CHIP_SIZE, CHIP_SIZE)
    chips = np.stack(
        [
            np.asarray(Image.open(args.crops / Path(p).with_suffix(".png")).convert("RGB").resize(
                size, Image.BILINEAR))
            for p in paths
        ]
    ).astype(np.float32)  # fmt: skip
    model = build_keras()
    forward = tf.function(lambda x: model(x, training=False))

    def describe(x: np.ndarray) -> np.ndarray:
        return np.concatenate([forward(x[i : i + 64]).numpy() for i in range(0, len(x), 64)])

    plain, mirrored = describe(chips), describe(chips[:, :, ::-1])
    where = {p: i for i, p in enumerate(paths)}
    a = np.array([where[p] for p in pairs.paths_a])
    b = np.array([where[p] for p in pairs.paths_b])
    for name, desc in (("single view", plain), ("flip averaged", plain + mirrored)):
        e = desc / np.linalg.norm(desc, axis=1, keepdims=True)
        r = evaluate_embeddings(e[a], e[b], pairs.labels, pairs.folds, metric="euclidean")
        print(f"{name}: accuracy {r['accuracy']:.4f} +- {r['accuracy_std']:.4f}, "
              f"AUC {r['roc_auc']:.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
