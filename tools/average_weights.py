"""Average the weights of several snapshots of one run into one model file (weight averaging).

Why: the snapshots at the end of a long run scatter around a minimum; their mean usually sits
nearer its centre and generalises better than any one of them (Izmailov et al., "Averaging
weights leads to wider optima and better generalization", 2018). BatchNorm's moving statistics
are averaged with the rest, which holds for snapshots of one trajectory. Every file must have
the same architecture; the first file's ModelInfo (alignment, preprocessing) is kept:

    python tools/average_weights.py runs/x/model-ep7[0-9].keras -o runs/x/model-avg.keras
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facenet.models import load_keras_model  # noqa: E402
from facenet.models.files import save_model  # noqa: E402


def average(paths: list[Path], out: Path) -> Path:
    """Write the element-wise mean of the files' weights to `out`."""
    model, info = load_keras_model(paths[0])
    total = [np.asarray(w, dtype=np.float64) for w in model.get_weights()]
    for path in paths[1:]:
        other, _ = load_keras_model(path)
        weights = other.get_weights()
        if [w.shape for w in weights] != [t.shape for t in total]:
            raise SystemExit(f"{path}: not the architecture of {paths[0]}")
        total = [t + w for t, w in zip(total, weights, strict=True)]
    model.set_weights([(t / len(paths)).astype(np.float32) for t in total])
    return save_model(model, info, out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("-o", "--out", type=Path, required=True)
    args = parser.parse_args()
    print(f"{average(args.models, args.out)}: mean of {len(args.models)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
