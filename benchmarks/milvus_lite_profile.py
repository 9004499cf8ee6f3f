"""Where Milvus Lite's search time goes: the client round trip, the engine, the vector index.

For a collection of `--n` random unit 128-d vectors in Milvus Lite 3 (the `facenet-keras[milvus]`
default, a pure-Python engine behind an in-process gRPC server), one query at a time:

  client     `MilvusClient.search` as `MilvusIndex.search` calls it (gRPC + engine)
  engine     `Collection.search` called directly in-process (no gRPC, no protobuf)
  index      only the per-segment vector index searches (`VectorIndex.search` for every
             segment, what a C++ engine would spend), without the engine's bookkeeping
  grpc floor the client round trip on a one-row collection

so client - engine is the per-call client/gRPC cost and engine - index is the engine's own
per-call work (its cross-segment de-duplication and tombstone mask, a Python loop over every
row, see milvus_lite/search/executor_indexed.py). Also: the same search under each consistency
level, and a cProfile of the engine's top functions. Reaches into milvus_lite internals
(`server_manager_instance`, `Collection`), so it is a diagnostic, not part of the gallery.

    python benchmarks/milvus_lite_profile.py --n 100000 --index FLAT IVF_FLAT
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import tempfile
import time
from pathlib import Path

import numpy as np
from pymilvus import DataType, MilvusClient


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def percentiles(seconds: list[float]) -> str:
    p50, p99 = np.percentile(np.asarray(seconds) * 1000, [50, 99])
    return f"p50 {p50:8.2f} ms  p99 {p99:8.2f} ms"


def timed(fn, n: int) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t0)
    return out


def make_collection(client: MilvusClient, name: str, index_type: str, params: dict) -> None:
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=128)
    index = client.prepare_index_params()
    index.add_index("vector", index_type=index_type, metric_type="IP", params=params)
    client.create_collection(name, schema=schema, index_params=index)


def engine_collection(uri: str, name: str):
    """The in-process milvus_lite `Collection` behind `uri` (Milvus Lite 3 only)."""
    from milvus_lite.server_manager import server_manager_instance

    _, db, _ = server_manager_instance._servers[str(Path(uri).absolute())]
    return db.get_collection(name)


def profile(index_type: str, base: np.ndarray, queries: np.ndarray, args) -> None:
    uri = str(Path(tempfile.mkdtemp()) / "profile.db")
    client = MilvusClient(uri)
    params = {"nlist": args.nlist} if index_type.startswith("IVF") else {}
    make_collection(client, "c", index_type, {"params": params} if params else {})
    t0 = time.perf_counter()
    for start in range(0, len(base), 10_000):
        rows = [{"id": start + i, "vector": v} for i, v in enumerate(base[start : start + 10_000])]
        client.insert("c", rows)
    client.flush("c")
    col = engine_collection(uri, "c")
    col._wait_for_bg()  # compaction and index build run in a background thread
    print(f"\n{index_type} {params}: insert+flush+index {time.perf_counter() - t0:.1f} s")
    segments = col._segments_snapshot()
    kinds = sorted({type(s.indexes.get("vector")).__name__ for s in segments})
    print(f"  segments: {len(segments)} ({', '.join(kinds)})")
    search = {"nprobe": args.nprobe} if index_type.startswith("IVF") else {}
    sp = {"metric_type": "IP", "params": search}
    nq, k = len(queries), args.k

    def via_client(i: int, level: str = "Session"):
        return client.search(
            "c", data=[queries[i]], limit=k, output_fields=[], search_params=sp,
            consistency_level=level,
        )  # fmt: skip

    def via_engine(i: int):
        return col.search([queries[i].tolist()], top_k=k, metric_type="IP", output_fields=[],
                          search_params=search or None)  # fmt: skip

    def via_index(i: int):
        for seg in segments:
            index = seg.indexes.get("vector")
            if index is not None:
                index.search(queries[i : i + 1], k, params=search or None)

    via_client(0), via_engine(0)  # warm
    print(f"  client  {percentiles(timed(via_client, nq))}")
    print(f"  engine  {percentiles(timed(via_engine, nq))}")
    if all(s.indexes.get("vector") is not None for s in segments):
        print(f"  index   {percentiles(timed(via_index, nq))}")
    for level in ("Strong", "Bounded", "Eventually"):
        seconds = timed(lambda i, lv=level: via_client(i, lv), nq)
        print(f"  client {level:<10} {percentiles(seconds)}")
    batch = np.ascontiguousarray(queries[:100])
    one = timed(lambda i: client.search("c", data=list(batch), limit=k, search_params=sp), 5)
    print(f"  client batch of {len(batch)}: {percentiles(one)} per call")
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(min(nq, 20)):
        via_engine(i)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(6)
    lines = [line for line in text.getvalue().splitlines() if "(" in line and "/" in line]
    print("  engine cProfile, top by own time (20 searches):")
    for line in lines[:6]:
        print("   ", line.strip()[:150])
    client.drop_collection("c")
    client.close()


def grpc_floor(queries: np.ndarray, args) -> None:
    client = MilvusClient(str(Path(tempfile.mkdtemp()) / "floor.db"))
    make_collection(client, "c", "FLAT", {})
    client.insert("c", [{"id": 0, "vector": queries[0]}])
    client.flush("c")
    t = timed(lambda i: client.search("c", data=[queries[i]], limit=args.k), len(queries))
    print(f"grpc floor (one-row collection): {percentiles(t)}")
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--index", nargs="+", default=["FLAT", "IVF_FLAT"])
    parser.add_argument("--nlist", type=int, default=0, help="IVF lists (default sqrt(n))")
    parser.add_argument("--nprobe", type=int, default=0, help="IVF lists probed (nlist/5)")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--k", type=int, default=5)
    args = parser.parse_args()
    args.nlist = args.nlist or int(np.sqrt(args.n))
    args.nprobe = args.nprobe or max(16, args.nlist // 5)
    import milvus_lite

    print(f"milvus_lite {milvus_lite.__version__}, n={args.n:,}, k={args.k}")
    rng = np.random.default_rng(0)
    base = unit(rng.standard_normal((args.n, 128), dtype=np.float32))
    picks = base[rng.integers(0, args.n, args.queries)]
    queries = unit(picks + rng.standard_normal(picks.shape).astype(np.float32) * 0.066)
    grpc_floor(queries, args)
    for index_type in args.index:
        profile(index_type, base, queries, args)


if __name__ == "__main__":
    main()
