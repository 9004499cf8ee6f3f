"""Clustering LFW: people with at least 4 photos, every method; pairwise P/R/F1, clusters vs people.

Each photo's most prominent face is embedded (photos without a detected face are left out and
counted), clustered at the model's threshold, and scored against the true identities.

    python benchmarks/cluster_lfw.py --model model.keras [--max-people 100] [--cache e.npz]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lfw_common import DEFAULT_LFW, embed, people  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="Model file (default: the bundled model).")
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW)
    parser.add_argument("--min-images", type=int, default=4)
    parser.add_argument("--max-people", type=int, default=None, help="Sample this many people.")
    parser.add_argument("--threshold", type=float, default=None, help="Default: the model's.")
    parser.add_argument(
        "--methods", nargs="+", default=["agglomerative", "dbscan", "chinese_whispers"]
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--cache", type=Path, default=None, help="npz embedding cache.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from facenet import FaceNet
    from facenet.clustering import cluster, pairwise_scores

    chosen = people(args.lfw, args.min_images)
    names = sorted(chosen)
    if args.max_people and len(names) > args.max_people:
        rng = np.random.default_rng(args.seed)
        names = sorted(rng.choice(names, args.max_people, replace=False).tolist())
    paths = [f for n in names for f in chosen[n]]
    labels = np.array([n for n in names for _ in chosen[n]])
    model = FaceNet.load(args.model)
    x = embed(model, paths, args.cache, args.batch_size)
    found = ~np.isnan(x[:, 0])
    x, labels = x[found], labels[found]
    threshold = model.info.verification_threshold if args.threshold is None else args.threshold
    print(
        f"model {model.info.name} ({model.model_id}); {len(names)} people, {len(x)} faces "
        f"({int((~found).sum())} photos without a face); threshold {threshold:.3f}"
    )
    header = (
        f"{'method':>17} {'precision':>9} {'recall':>7} {'F1':>6} {'clusters':>8} "
        f"{'people':>6} {'noise':>5} {'s':>6}"
    )
    print(header)
    print("-" * len(header))
    results = []
    for method in args.methods:
        started = time.perf_counter()
        predicted = cluster(x, threshold=threshold, method=method)
        seconds = time.perf_counter() - started
        s = pairwise_scores(labels, predicted)
        results.append({"method": method, "seconds": round(seconds, 2), **s.to_dict()})
        print(
            f"{method:>17} {s.precision:>9.4f} {s.recall:>7.4f} {s.f1:>6.4f} "
            f"{s.clusters:>8} {s.people:>6} {s.noise:>5} {seconds:>6.1f}"
        )
    if args.json:
        print(json.dumps({"model_id": model.model_id, "threshold": threshold, "results": results}))


if __name__ == "__main__":
    main()
