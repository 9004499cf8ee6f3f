"""LFW View 1 accuracy of several model files (a run's per-epoch snapshots), faces aligned once.

Why: a training curve needs the same pairs scored for every epoch's weights; detecting and
aligning the pair images again for each file would cost most of the time. The crops are cut once
(the first model's input size, margin and alignment; every file must agree) and cached in
`--cache`, then each model embeds them and the 10-fold accuracy is printed, one line per file:

    python tools/view1_curve.py runs/x/model-ep*.keras [--pairs ../shared/data/lfw/pairsDevTest.txt]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facenet.models import load_keras_model  # noqa: E402
from facenet.models.embedder import KerasEmbedder  # noqa: E402
from facenet.train.validation import PairValidator  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--pairs", type=Path,
                        default=ROOT.parent / "shared/data/lfw/pairsDevTest.txt")  # fmt: skip
    parser.add_argument("--cache", type=Path, default=Path("view1-crops.npz"))
    args = parser.parse_args()
    loaded = [(path, *load_keras_model(path)) for path in args.models]
    shapes = {(i.input_size, i.margin, i.alignment) for _, _, i in loaded}
    if len(shapes) > 1:
        print(f"the models want different crops: {sorted(shapes)}", file=sys.stderr)
        return 2
    size, margin, alignment = shapes.pop()
    pairs = PairValidator.from_pairs_file(args.pairs, size, margin, args.cache, alignment=alignment)
    print(f"{pairs.name}: {len(pairs)} pairs, {len(pairs.crops)} crops at {size} px ({alignment})")
    for path, model, info in loaded:
        out = pairs.evaluate(KerasEmbedder(model, info))
        print(f"{path}\t{100 * out['accuracy']:.2f}% ± {100 * out['accuracy_std']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
