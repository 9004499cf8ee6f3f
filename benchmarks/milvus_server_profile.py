"""Where a Milvus server's single-query tail comes from: client, server stages, segments.

Starts an embedded Milvus server (`facenet/gallery/milvus_embedded.py`) with the settings
given (`--config key=value`, milvus.yaml names; `--env NAME=VALUE` for the server process,
e.g. GOMAXPROCS; not GOGC, which the query node's GC tuner overrides: its ceiling is
QUERYNODE_GCHELPER_MAXIMUMGOGC, docs/deploy.md), builds an HNSW collection of `--n` random
unit 128-d vectors through the gallery's `MilvusIndex`, waits until every row is indexed
and served (and, with `--settle`, until the served segment layout has not changed for that
many seconds), prints the layout, warms up, then times one query at a time, the methods
interleaved query by query so each sees the same machine load:

  faiss      FAISS exact search on one thread (the load baseline: read ratios against it)
  gallery    `MilvusIndex.search(q, k)`, what `Gallery.identify` calls
  client     `MilvusClient.search` with the same parameters (no gallery code)
  client-k1  the same with limit 1
  floor      the same search on a 10-row collection (the fixed cost of a search request)

and, from the server's Prometheus metrics (scraped before and after), the stages of the
searches it served: proxy total, query-node queue wait, segment search, reduce (bucket
estimates). Slow searches (over 2x their method's median) are listed by time, to show
whether they come periodically (a timer in the server) or with the load.

    python benchmarks/milvus_server_profile.py --n 100000 --queries 500
    python benchmarks/milvus_server_profile.py --n 100000 --config dataCoord.segment.maxSize=2048
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
from benchmarks.gallery_search import (  # noqa: E402
    make_queries,
    rss_mb,
    served_segments,
    unit,
    wait_for_server_index,
)
from facenet.gallery.milvus_embedded import EmbeddedMilvus  # noqa: E402
from facenet.gallery.milvus_index import MilvusIndex  # noqa: E402

#: Server histograms worth splitting a search by (Milvus 2.3 names, milliseconds).
STAGES = {
    "proxy": "milvus_proxy_sq_latency",
    "qn-queue": "milvus_querynode_sq_queue_latency",
    "qn-request": "milvus_querynode_sq_req_latency",
    "qn-segments": "milvus_querynode_sq_segment_latency",
    "qn-reduce": "milvus_querynode_sq_reduce_latency",
    "proxy-reduce": "milvus_proxy_sq_reduce_result_latency",
    "proxy-wait-ts": "milvus_proxy_sq_wait_result_latency",
}


def scrape(port: int) -> dict[str, dict[float, float]]:
    """Search histograms from the server's /metrics: {metric: {bucket le: count}}, summed
    over label sets that mention a search (or carry no query type)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    out: dict[str, dict[float, float]] = {}
    for line in text.splitlines():
        m = re.match(r"(\w+)_bucket\{(.*)\} (\S+)", line)
        if not m or m.group(1) not in STAGES.values():
            continue
        labels = m.group(2)
        if "query_type" in labels and 'query_type="search"' not in labels:
            continue
        le = re.search(r'le="([^"]+)"', labels).group(1)
        bucket = out.setdefault(m.group(1), {})
        key = float("inf") if le == "+Inf" else float(le)
        bucket[key] = bucket.get(key, 0.0) + float(m.group(3))
    return out


def stage_line(before: dict, after: dict, metric: str) -> str:
    """How many of the searches recorded between two scrapes took longer than each of the
    histogram's bucket edges (1 to 32 ms)."""
    a, b = after.get(metric, {}), before.get(metric, {})
    edges = sorted(a)
    counts = [a[e] - b.get(e, 0.0) for e in edges]  # cumulative
    total = counts[-1] if counts else 0
    if not total:
        return "no samples"

    over = "  ".join(
        f">{e:g}:{total - c:4.0f}" for e, c in zip(edges, counts, strict=True) if 1 <= e <= 32
    )
    return f"n {total:6.0f}  searches over N ms  {over}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu(pid: int, seconds: float = 10.0) -> float:
    """The server's CPU use with no request in flight, percent of one core (its timers:
    time ticks, heartbeats, checks, Go GC)."""
    t0, c0 = time.perf_counter(), cpu_seconds(pid)
    time.sleep(seconds)
    return 100 * (cpu_seconds(pid) - c0) / (time.perf_counter() - t0)


def build(server_uri: str, folder: str, base: np.ndarray, settle: float, ef: int) -> MilvusIndex:
    index = MilvusIndex(
        Path(folder) / "profile.db", base.shape[1], uri=server_uri, index_type="HNSW"
    )
    index.search_params["ef"] = ef
    t0 = time.perf_counter()
    index.add(base, np.arange(len(base), dtype=np.int64))
    index.client.flush(index.collection)
    wait_for_server_index(index, len(base), settle)
    print(f"built: {len(base):,} rows indexed and served in {time.perf_counter() - t0:.1f} s")
    return index


def methods(index: MilvusIndex, base: np.ndarray, k: int, floor: str) -> dict:
    """Name -> search of one query vector."""
    flat = faiss.IndexFlatIP(base.shape[1])
    flat.add(base)
    faiss.omp_set_num_threads(1)
    client = index.client
    sp = {"metric_type": "IP", "params": dict(index.search_params)}

    def raw(q, limit, name=index.collection):
        return client.search(name, data=[q], limit=limit, output_fields=[], search_params=sp,
                             consistency_level="Session")  # fmt: skip

    return {
        "faiss": lambda q: flat.search(q[None], k),
        "gallery": lambda q: index.search(q[None], k),
        "client": lambda q: raw(q, k),
        "client-k1": lambda q: raw(q, 1),
        "floor": lambda q: raw(q, k, floor),
    }


def make_floor(index: MilvusIndex, dim: int) -> str:
    """A 10-row collection searched exactly: the fixed cost of one search request."""
    name = "profile_floor"
    client = index.client
    if client.has_collection(name):
        client.drop_collection(name)
    client.create_collection(name, dimension=dim, metric_type="IP", consistency_level="Session")
    rng = np.random.default_rng(1)
    client.insert(name, [{"id": i, "vector": v} for i, v in enumerate(unit(rng.random((10, dim))))])
    return name


def run(server: EmbeddedMilvus, folder: str, args) -> None:
    rng = np.random.default_rng(args.seed)
    base = unit(rng.standard_normal((args.n, args.dim), dtype=np.float32))
    queries = make_queries(base, args.queries, rng, False)
    before_build = rss_mb(server.pid)
    index = build(server.uri, folder, base, args.settle, args.ef)
    print(f"server RSS {rss_mb(server.pid):.0f} MB (+{rss_mb(server.pid) - before_build:.0f})")
    floor = make_floor(index, args.dim)
    calls = methods(index, base, args.k, floor)
    warm = make_queries(base, args.warmup, rng, False)
    for q in warm:
        for fn in calls.values():
            fn(q)
    print(f"server idle CPU: {idle_cpu(server.pid):.1f}% of a core")
    port = server._server.webservice_port
    before = scrape(port)
    cpu0 = cpu_seconds(server.pid)
    times = {name: [] for name in calls}
    stamps = {name: [] for name in calls}
    client_cpu = dict.fromkeys(calls, 0.0)  # this process's CPU seconds per method
    t_start = time.perf_counter()
    print(f"load before timing: {open('/proc/loadavg').read().strip()}")
    names = list(calls)
    for q in queries:  # a new order each query: no method always follows FAISS's memory scan
        for name in rng.permutation(names):
            fn = calls[name]
            t0, c0 = time.perf_counter(), time.process_time()
            fn(q)
            t1, c1 = time.perf_counter(), time.process_time()
            times[name].append((t1 - t0) * 1000)
            client_cpu[name] += c1 - c0
            stamps[name].append(t0 - t_start)
    after = scrape(port)
    searches = len(queries) * (len(calls) - 1)
    print(f"server CPU per search: {1000 * (cpu_seconds(server.pid) - cpu0) / searches:.2f} ms")
    print(f"load after timing:  {open('/proc/loadavg').read().strip()}")
    report(times, stamps, before, after)
    pending = index.client.describe_index(index.collection, "vector")["pending_index_rows"]
    print(f"after timing: served {served_segments(index)}, {pending} rows pending an index")
    per_call = (f"{name} {1000 * cpu / len(queries):.2f} ms" for name, cpu in client_cpu.items())
    print("client CPU per call (this process): " + "  ".join(per_call))


def report(times: dict, stamps: dict, before: dict, after: dict) -> None:
    base50 = np.percentile(times["faiss"], 50)
    base99 = np.percentile(times["faiss"], 99)
    print(f"{'method':>10} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{'p50/faiss':>9} {'p99/faiss':>9} {'>5 ms':>6}")  # fmt: skip
    for name, t in times.items():
        t = np.asarray(t)
        p50, p90, p99 = np.percentile(t, [50, 90, 99])
        print(f"{name:>10} {p50:8.3f} {p90:8.3f} {p99:8.3f} {t.max():8.2f} "
              f"{p50 / base50:9.2f} {p99 / base99:9.2f} {int((t > 5).sum()):>6}")  # fmt: skip
    print("server stages (searches of every method above, bucket upper bounds):")
    for label, metric in STAGES.items():
        print(f"  {label:>13}: {stage_line(before, after, metric)}")
    t = np.asarray(times["gallery"])
    slow = np.flatnonzero(t > 2 * np.median(t))
    at = np.asarray(stamps["gallery"])[slow]
    print(
        f"gallery searches over 2x median: {len(slow)} of {len(t)}; at s: "
        + " ".join(f"{s:.2f}({v:.1f})" for s, v in zip(at, t[slow], strict=True))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--ef", type=int, default=256)
    parser.add_argument("--settle", type=float, default=0, help="seconds of a stable layout")
    parser.add_argument("--config", nargs="*", default=[], help="milvus.yaml key=value")
    parser.add_argument("--env", nargs="*", default=[], help="server environment NAME=VALUE")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    config = dict(item.split("=", 1) for item in args.config)
    os.environ.update(dict(item.split("=", 1) for item in args.env))  # the server inherits it
    print(f"n={args.n:,} ef={args.ef} k={args.k} config={config} env={args.env}")
    with tempfile.TemporaryDirectory() as folder:
        with EmbeddedMilvus(Path(folder) / "server", **config) as server:
            run(server, folder, args)


if __name__ == "__main__":
    main()
