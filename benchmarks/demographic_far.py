"""False-accept rate by age band and ethnicity on UTKFace, at a model's threshold.

UTKFace has no identity labels, but its 6,490 faces are of different people (crawled photos,
balanced by group), so every pair within a group is an impostor pair: the share of them a model
calls "same person" is that group's false-accept rate (FAR). Models trained on Western adult
celebrities are known to accept more impostors among East-Asian faces and children; this
measures it. Genuine-pair rates (TAR) cannot be measured on this data.

    python benchmarks/demographic_far.py [--model M] [--pairs 20000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "utkface"
RACES = {0: "White", 1: "Black", 2: "Asian", 3: "Indian", 4: "Others"}
AGE_BANDS = (
    (0, 12, "0-12"), (13, 19, "13-19"), (20, 39, "20-39"), (40, 59, "40-59"), (60, 200, "60+"),
)  # fmt: skip
NAME = re.compile(r"^(\d+)_(\d)_(\d)_")


def band(age: int) -> str:
    return next(label for low, high, label in AGE_BANDS if low <= age <= high)


def impostor_far(emb: np.ndarray, threshold: float, pairs: int, rng) -> tuple[float, int]:
    n = len(emb)
    if n < 2:
        return float("nan"), 0
    a = rng.integers(0, n, pairs)
    b = rng.integers(0, n - 1, pairs)
    b = b + (b >= a)  # never a face with itself
    d = np.sum((emb[a] - emb[b]) ** 2, axis=1)
    return float(np.mean(d <= threshold)), pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="Model file (default: the bundled model).")
    parser.add_argument("--utkface", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--pairs", type=int, default=20000, help="impostor pairs per group")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from facenet import FaceNet

    model = FaceNet.load(args.model)
    files, ages, races = [], [], []
    for path in sorted(args.utkface.glob("*.jpg")):
        match = NAME.match(path.name)
        if match:
            files.append(path)
            ages.append(int(match[1]))
            races.append(int(match[3]))
    emb = model.embed(files, on_missing="nan", show_progress=True)
    found = ~np.isnan(emb[:, 0])
    ages, races = np.array(ages), np.array(races)
    threshold = model.threshold
    rng = np.random.default_rng(0)
    rows = []
    groups = [("all", np.ones(len(files), bool))]
    groups += [(RACES[r], races == r) for r in RACES]
    groups += [(f"age {label}", np.array([band(a) == label for a in ages]))
               for _, _, label in AGE_BANDS]  # fmt: skip
    for name, group in groups:
        far, n = impostor_far(emb[group & found], threshold, args.pairs, rng)
        missing = int((group & ~found).sum())
        rows.append({"group": name, "photos": int(group.sum()), "no_face": missing,
                     "pairs": n, "far": far})  # fmt: skip
    print(f"model {model.info.name} ({model.model_id}), threshold {threshold:.4f}; "
          f"{int(found.sum())}/{len(files)} photos with a face")  # fmt: skip
    print(f"{'group':14}{'photos':>7}{'no face':>9}{'FAR at threshold':>18}")
    for row in rows:
        print(f"{row['group']:14}{row['photos']:>7}{row['no_face']:>9}{row['far']:>18.4f}")
    if args.json:
        args.json.write_text(json.dumps({"threshold": threshold, "groups": rows}, indent=2))


if __name__ == "__main__":
    main()
