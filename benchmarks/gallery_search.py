"""Gallery search: exact vs approximate FAISS indexes on random unit vectors.

Measures, for each gallery size: build time, single-query latency (p50/p99, one query at a
time, as `Gallery.identify` does), recall@1 of the approximate index against the exact one,
and the resident-memory growth (RSS delta) of building the index. Queries are noisy copies of
gallery vectors (squared-L2 distance about 0.5 to their source, like a new photo of an enrolled
person); `--random-queries` uses fresh random vectors instead (the worst case for ANN recall).

The index kinds are the ones `facenet.gallery.index` builds: "flat" (exact inner product),
"ivf" (IVF-Flat, nlist ~ sqrt(n), nprobe as in the gallery) and, for comparison, "hnsw".

    python benchmarks/gallery_search.py                       # 10k, 100k, 1M
    python benchmarks/gallery_search.py --sizes 10000 100000 --kinds flat ivf
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
from facenet.gallery.index import build_index  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def make_queries(base: np.ndarray, nq: int, rng, random_queries: bool) -> np.ndarray:
    d = base.shape[1]
    if random_queries:
        return unit(rng.standard_normal((nq, d)))
    picks = base[rng.integers(0, len(base), nq)]
    # noise of norm ~0.75 before renormalising: distance to the source ~0.5
    return unit(picks + rng.standard_normal((nq, d)).astype(np.float32) * (0.75 / np.sqrt(d)))


def time_queries(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    times, ids = [], []
    for q in queries:
        t0 = time.perf_counter()
        _, i = index.search(q[None, :], k)
        times.append(time.perf_counter() - t0)
        ids.append(i[0])
    return np.asarray(times) * 1000, np.asarray(ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--kinds", nargs="+", default=["flat", "ivf", "hnsw"])
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="FAISS threads for building")
    parser.add_argument(
        "--hnsw-max", type=int, default=100_000,
        help="skip hnsw above this (its 1M build takes over 4 minutes on 2 cores)",
    )  # fmt: skip
    parser.add_argument("--random-queries", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    header = (
        f"{'n':>9} {'index':>6} {'build s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'recall@1':>8} {'RSS +MB':>8}"
    )
    print(header)
    print("-" * len(header), flush=True)
    for n in args.sizes:
        base = unit(rng.standard_normal((n, args.dim), dtype=np.float32))
        ids = np.arange(n, dtype=np.int64)
        queries = make_queries(base, args.queries, rng, args.random_queries)
        exact_top1 = None
        for kind in args.kinds:
            if kind == "hnsw" and n > args.hnsw_max:
                continue
            gc.collect()
            before = rss_mb()
            faiss.omp_set_num_threads(args.threads)
            t0 = time.perf_counter()
            index = build_index(base, ids, kind=kind)
            build = time.perf_counter() - t0
            grown = rss_mb() - before
            faiss.omp_set_num_threads(1)  # one query at a time, one thread: the identify case
            times, found = time_queries(index, queries, args.k)
            if kind == "flat":
                exact_top1 = found[:, 0]
                recall = 1.0
            else:
                recall = (
                    float(np.mean(found[:, 0] == exact_top1)) if exact_top1 is not None else np.nan
                )
            print(
                f"{n:>9,} {kind:>6} {build:>8.2f} {np.percentile(times, 50):>8.3f} "
                f"{np.percentile(times, 99):>8.3f} {recall:>8.3f} {grown:>8.0f}",
                flush=True,
            )
            del index
        del base


if __name__ == "__main__":
    main()
