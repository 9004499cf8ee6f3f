"""Gallery search: exact vs approximate FAISS indexes, and Milvus, on random unit vectors.

Measures, for each gallery size: build (insert) time, single-query latency (p50/p99, one query
at a time, as `Gallery.identify` does), latency of batches of `--batch` queries, recall@1 of the
approximate index against the exact one, and the resident-memory growth (RSS delta) of building
the index. Queries are noisy copies of gallery vectors (squared-L2 distance about 0.5 to their
source, like a new photo of an enrolled person); `--random-queries` uses fresh random vectors
instead (the worst case for ANN recall).

The index kinds are the ones `facenet.gallery.index` builds: "flat" (exact inner product),
"ivf" (IVF-Flat, nlist ~ sqrt(n), nprobe as in the gallery) and, for comparison, "hnsw";
"milvus" is the gallery's Milvus backend (`facenet-keras[milvus]`): Milvus Lite in a temporary
folder (in-process, so its memory is counted), or the server at `--milvus-uri` (`embedded`:
one started here, `facenet/gallery/milvus_embedded.py`, with its `SERVER_CONFIG` and
`--milvus-config`, its memory growth in "srv +MB"; the build waits until the server has
indexed and serves every row and its segment layout, printed, has been stable for
`--milvus-settle` seconds: no compaction or index build left running), one row per
`--milvus-index` index type, labelled "mv-default" (the gallery's rule: FLAT up to 200k
faces, IVF_FLAT above; HNSW on a server), "mv-flat", "mv-ivf_flat", "mv-hnsw", ...
(`--milvus-ef` searches one HNSW build at several beam widths: "mv-hnsw/256", `--milvus-nprobe`
an IVF_FLAT or SCANN build with several numbers of lists probed: "mv-scann/205"). Milvus Lite
builds segment indexes in a background thread after a flush; the build time includes waiting
for it (a diagnostic reach into milvus_lite).
`benchmarks/milvus_lite_profile.py` breaks Milvus Lite's search time down,
`benchmarks/milvus_server_profile.py` a server's.

    python benchmarks/gallery_search.py                       # 10k, 100k, 1M
    python benchmarks/gallery_search.py --sizes 100000 --kinds flat ivf milvus
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
from facenet.gallery.index import build_index  # noqa: E402


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of a process (this one by default), MB."""
    with open(f"/proc/{pid}/status") as f:
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


def time_queries(index, queries: np.ndarray, k: int, batch: int = 1) -> tuple[np.ndarray, ...]:
    """(milliseconds per search call, ids (nq, k)), searching `batch` queries per call."""
    times, ids = [], []
    for start in range(0, len(queries), batch):
        t0 = time.perf_counter()
        _, i = index.search(queries[start : start + batch], k)
        times.append(time.perf_counter() - t0)
        ids.extend(i)
    return np.asarray(times) * 1000, np.asarray(ids)


def build_milvus(index_type: str, base: np.ndarray, ids: np.ndarray, folder: str, args):
    """The gallery's Milvus backend over `base`: Milvus Lite in `folder`, or `--milvus-uri`."""
    from facenet.gallery.milvus_index import MilvusIndex

    index = MilvusIndex(
        Path(folder) / f"bench{len(base)}_{index_type}.db",
        base.shape[1],
        uri=args.milvus_uri,
        index_type=None if index_type == "DEFAULT" else index_type,
    )
    if index.present:
        index.client.drop_collection(index.collection)
        index._present = False
    index.add(base, ids)
    index.client.flush(index.collection)  # as `MilvusIndex.save` does after each enrolment
    wait_for_lite_indexes(index)
    wait_for_server_index(index, len(base), args.milvus_settle)
    index.search(base[:1], 1)
    return index


def wait_for_server_index(index, n: int, settle: float = 0.0, timeout: float = 3600.0) -> None:
    """Wait until a server has indexed every row, its query node serves the indexed segments
    (a server builds indexes asynchronously after segments are sealed) and the served layout
    has not changed, nor any index build been pending, for `settle` seconds."""
    if index.local:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = index.client.describe_index(index.collection, "vector")
        if int(described["indexed_rows"]) >= n and int(described["pending_index_rows"]) == 0:
            break
        time.sleep(1)
    while time.monotonic() < deadline:
        if sum(rows for rows, indexed in served_segments(index) if indexed) >= n:
            break
        time.sleep(1)
    else:
        raise TimeoutError(f"{index.collection}: not indexed and served in {timeout:.0f} s")
    # then no background work: a compaction merging segments and indexing the result would
    # compete with the searches for the CPU (and change the layout searched midway)
    layout, since = served_segments(index), time.monotonic()
    while time.monotonic() - since < settle and time.monotonic() < deadline:
        time.sleep(2)
        now = served_segments(index)
        pending = int(index.client.describe_index(index.collection, "vector")["pending_index_rows"])
        if now != layout or pending:
            layout, since = now, time.monotonic()
    print(f"  {index.collection}: served as {len(layout)} segments of "
          f"{', '.join(str(rows) for rows, _ in layout)} rows", flush=True)  # fmt: skip


def served_segments(index) -> list[tuple[int, bool]]:
    """(rows, indexed) of each segment the server's query node searches, largest first."""
    handler = index.client._get_connection()  # no MilvusClient call lists loaded segments
    segments = handler.get_query_segment_info(index.collection)
    return sorted(((s.num_rows, bool(s.index_name)) for s in segments), reverse=True)


def wait_for_lite_indexes(index) -> None:
    """Wait for Milvus Lite's background compaction and segment index builds (no public API
    says when they are done; a server builds its indexes the same way, asynchronously)."""
    if not index.local:
        return
    from milvus_lite.server_manager import server_manager_instance

    entry = server_manager_instance._servers.get(str(Path(index.uri).absolute()))
    if entry is not None:
        entry[1].get_collection(index.collection)._wait_for_bg()


def build(kind: str, base: np.ndarray, ids: np.ndarray, folder: str, args):
    """An index of `kind` over `base` (FAISS threads set for building)."""
    if kind.startswith("mv-"):
        return build_milvus(kind[3:].upper(), base, ids, folder, args)
    faiss.omp_set_num_threads(args.threads)
    index = build_index(base, ids, kind=kind)
    faiss.omp_set_num_threads(1)  # one query at a time, one thread: the identify case
    return index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--kinds", nargs="+", default=["flat", "ivf", "hnsw"])
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--batch", type=int, default=100, help="queries per batched search")
    parser.add_argument("--batches", type=int, default=10, help="batched searches timed")
    parser.add_argument(
        "--milvus-uri", default=None,
        help="a Milvus server (default: Lite); 'embedded' starts one (the `milvus` package)",
    )  # fmt: skip
    parser.add_argument(
        "--milvus-index", nargs="+", default=["default"],
        help="Milvus index types: default (the gallery's choice), FLAT, IVF_FLAT, HNSW, ...",
    )  # fmt: skip
    parser.add_argument(
        "--milvus-ef", type=int, nargs="*", default=[],
        help="HNSW beam widths to search a Milvus HNSW index with (default: the gallery's)",
    )  # fmt: skip
    parser.add_argument(
        "--milvus-nprobe", type=int, nargs="*", default=[],
        help="IVF lists to probe in a Milvus IVF_FLAT or SCANN index (default: the gallery's)",
    )  # fmt: skip
    parser.add_argument(
        "--milvus-config", nargs="*", default=[], metavar="KEY=VALUE",
        help="settings of the 'embedded' server over milvus_embedded.SERVER_CONFIG",
    )  # fmt: skip
    parser.add_argument(
        "--milvus-settle", type=float, default=90.0,
        help="seconds a server's segment layout must stay unchanged before timing (its "
        "compaction trigger runs every 60 s)",
    )  # fmt: skip
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="FAISS threads for building")
    parser.add_argument(
        "--hnsw-max", type=int, default=100_000,
        help="skip hnsw above this (its 1M build takes over 4 minutes on 2 cores)",
    )  # fmt: skip
    parser.add_argument("--random-queries", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        if args.milvus_uri == "embedded":
            from facenet.gallery.milvus_embedded import SERVER_CONFIG, EmbeddedMilvus

            config = dict(item.split("=", 1) for item in args.milvus_config)
            with EmbeddedMilvus(Path(folder) / "milvus-server", **config) as server:
                args.milvus_uri, args.server_pid = server.uri, server.pid
                print(f"embedded Milvus server {server.uri}, pid {server.pid}, "
                      f"settings {SERVER_CONFIG | config}")  # fmt: skip
                run(args, folder)
        else:
            args.server_pid = None
            run(args, folder)


def run(args, folder: str) -> None:
    """Every size and kind: one printed row each."""
    rng = np.random.default_rng(args.seed)
    header = (
        f"{'n':>9} {'index':>11} {'build s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{f'x{args.batch} p50':>9} {f'x{args.batch} p99':>9} {'recall@1':>8} {'RSS +MB':>8}"
        f" {'srv +MB':>8}"
    )
    print(header)
    print("-" * len(header), flush=True)
    for n in args.sizes:
        base = unit(rng.standard_normal((n, args.dim), dtype=np.float32))
        queries = make_queries(base, args.queries, rng, args.random_queries)
        batched = make_queries(base, args.batch * args.batches, rng, args.random_queries)
        exact = None
        kinds = [k for kind in args.kinds for k in expand(kind, args)]
        for kind in kinds:
            if kind == "hnsw" and n > args.hnsw_max:
                continue
            for row in measure(kind, base, queries, batched, folder, args):
                found = row.pop("top1")
                if kind == "flat":
                    exact = found
                recall = float(np.mean(found == exact)) if exact is not None else np.nan
                print(
                    f"{n:>9,} {row['label']:>11} " + row["line"]
                    + f" {recall:>8.3f} {row['rss']:>8.0f} {row['server']:>8.0f}", flush=True,
                )  # fmt: skip
        del base


def expand(kind: str, args) -> list[str]:
    """The rows for `kind`: "milvus" is one per `--milvus-index` type."""
    return [f"mv-{t.lower()}" for t in args.milvus_index] if kind == "milvus" else [kind]


def search_knob(kind: str, index, args) -> tuple[str | None, list]:
    """(search parameter, values) to sweep for a Milvus index: HNSW's beam (`--milvus-ef`),
    an IVF-type index's lists probed (`--milvus-nprobe`); else the index's own setting."""
    if kind.startswith("mv-"):
        if index.kind == "hnsw" and args.milvus_ef:
            return "ef", args.milvus_ef
        if "nprobe" in index.search_params and args.milvus_nprobe:
            return "nprobe", args.milvus_nprobe
    return None, [None]


def measure(kind: str, base, queries, batched, folder: str, args) -> list[dict]:
    """Build `kind` over `base` and time single and batched queries: printable rows, one per
    `--milvus-ef` for a Milvus HNSW index (searched with each beam width), else one."""
    gc.collect()
    server = args.server_pid if kind.startswith("mv-") else None
    before, server_before = rss_mb(), rss_mb(server) if server else np.nan
    t0 = time.perf_counter()
    index = build(kind, base, np.arange(len(base), dtype=np.int64), folder, args)
    seconds = time.perf_counter() - t0
    grown = rss_mb() - before
    server_grown = rss_mb(server) - server_before if server else np.nan
    knob, settings = search_knob(kind, index, args)
    rows = []
    for value in settings:
        label = kind
        if value is not None:
            index.search_params[knob], label = value, f"{kind}/{value}"
        single, found = time_queries(index, queries, args.k)
        batch, _ = time_queries(index, batched, args.k, args.batch)
        p = np.percentile
        line = (
            f"{seconds:>8.2f} {p(single, 50):>8.3f} {p(single, 99):>8.3f} "
            f"{p(batch, 50):>9.2f} {p(batch, 99):>9.2f}"
        )
        rows.append({"label": label, "line": line, "top1": found[:, 0], "rss": grown,
                     "server": server_grown})  # fmt: skip
    if kind.startswith("mv-"):
        index.client.drop_collection(index.collection)
        index.close()
    return rows


if __name__ == "__main__":
    main()
