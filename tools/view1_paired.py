"""Is one model file better than another on LFW View 1, beyond noise? A paired test.

Why: a shipping rule of "more View 1 pairs right" acts on noise when two files differ by a few
pairs (the eleventh session's 128 px student: +5 of 3,200, then 0.9 points worse on View 2).
Both files judge the same pairs, so the test that fits is McNemar's: of the pairs exactly one
file gets right, does the candidate win more often than a fair coin would? Each pair is judged
the way the 10-fold accuracy judges it (at its fold's threshold, chosen on the other nine
folds), so the counts equal accuracy x pairs. The files may want different crops (another input
size): each gets its own, cached in --cache-dir per pairs file and crop.

    python tools/view1_paired.py facenet/weights/facenet-mobilenet.keras runs/x/model.keras \
        --pairs ../shared/data/lfw/pairsDevTrain.txt ../shared/data/lfw/pairsDevTest.txt
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LFW = ROOT.parent / "shared/data/lfw"


def fold_decisions(distances, labels, folds) -> np.ndarray:
    """Per pair: right (True) or wrong at its fold's threshold, chosen on the other folds."""
    from facenet.evaluate.metrics import kfold_accuracy

    d = np.asarray(distances, np.float64)
    f = np.asarray(folds)
    thresholds = np.asarray(kfold_accuracy(d, labels, f)["fold_threshold"])
    per_pair = thresholds[np.searchsorted(np.unique(f), f)]
    return (d <= per_pair) == np.asarray(labels, bool)


def mcnemar(base_right, candidate_right) -> tuple[int, int, float]:
    """(pairs right only for the candidate, only for the base, exact two-sided p)."""
    base = np.asarray(base_right, bool)
    cand = np.asarray(candidate_right, bool)
    wins, losses = int((cand & ~base).sum()), int((base & ~cand).sum())
    n, k = wins + losses, min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n  # P(X <= k), X ~ Binomial(n, 1/2)
    return wins, losses, min(1.0, 2 * tail)


def decisions(model, info, pairs_path: Path, cache_dir: Path) -> np.ndarray:
    """One loaded file's per-pair decisions on one pairs file (crops cut once, then cached)."""
    from facenet.evaluate.metrics import pair_distances
    from facenet.models.embedder import KerasEmbedder
    from facenet.train.validation import PairValidator

    cache = cache_dir / f"{pairs_path.stem}-{info.alignment}-{info.input_size}-m{info.margin}.npz"
    pairs = PairValidator.from_pairs_file(pairs_path, info.input_size, info.margin, cache,
                                          alignment=info.alignment)  # fmt: skip
    emb = pairs.embed(KerasEmbedder(model, info))
    distances = pair_distances(emb[pairs.index_a], emb[pairs.index_b])
    return fold_decisions(distances, pairs.labels, pairs.folds)


def _summary(base: np.ndarray, cand: np.ndarray) -> str:
    wins, losses, p = mcnemar(base, cand)
    return (f"base {base.sum()}, candidate {cand.sum()} of {base.size} right; only the candidate "
            f"{wins}, only the base {losses}, McNemar p = {p:.3f}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path, help="the file in use (e.g. the shipped one)")
    parser.add_argument("candidate", type=Path)
    parser.add_argument("--pairs", nargs="+", type=Path,
                        default=[LFW / "pairsDevTrain.txt", LFW / "pairsDevTest.txt"])  # fmt: skip
    parser.add_argument("--cache-dir", type=Path, default=Path("view1-crops"))
    args = parser.parse_args()
    from facenet.models import load_keras_model

    args.cache_dir.mkdir(parents=True, exist_ok=True)
    base, candidate = load_keras_model(args.base), load_keras_model(args.candidate)
    pooled_base, pooled_cand = [], []
    for pairs_path in args.pairs:
        pooled_base.append(decisions(*base, pairs_path, args.cache_dir))
        pooled_cand.append(decisions(*candidate, pairs_path, args.cache_dir))
        print(f"{pairs_path.name}: {_summary(pooled_base[-1], pooled_cand[-1])}")
    print(f"pooled: {_summary(np.concatenate(pooled_base), np.concatenate(pooled_cand))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
