"""Cheap trials of a Milvus server's single-query tail at 1M: build once, then time settings.

`build` puts `--n` random unit 128-d vectors (seed `--seed`) into an embedded Milvus server
(`facenet/gallery/milvus_embedded.py`) through the gallery's `MilvusIndex` (HNSW, its
parameters), waits until every row is indexed, served and the layout is still, and stops the
server: the collection stays in `FOLDER/server` (the server's local storage and etcd), with
the FAISS IVF index the gallery builds for that size (`build_index(kind="ivf")`) beside it.

`trial` starts the server on that folder again with the settings given (`--config` milvus.yaml
keys, `--env` for the server process such as GOGC or GOMAXPROCS, `--server-cpus` / `--client-cpus`
placement), loads the collection, warms up, then times `--queries` single searches through
`MilvusIndex.search` (what `Gallery.identify` calls), interleaved in random order query by query
with FAISS IVF on the same vectors in this process (one thread), so both see the same load.
Prints p50/p90/p99/max, searches over 5 ms and recall@1 against exact search for each, the
server's threads and CPU per search. `--pause-pids` stops other processes (SIGSTOP) for the
timed part only (warm-up and timing) and always continues them (SIGCONT), also on errors
and Ctrl+C. Timing starts `--after-start` seconds (45) after the server's start: a killed
server restarted on its folder calls its previous incarnation's nodes for ~30 s (their etcd
sessions come back with its embedded etcd), busy work that is not the search's.

    python benchmarks/milvus_p99_trials.py build --folder /tmp/kept --n 1000000
    python benchmarks/milvus_p99_trials.py trial --folder /tmp/kept --server-cpus 1 \\
        --client-cpus 0 --config queryNode.segcore.knowhereThreadPoolNumRatio=1 --env GOGC=400
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
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
from benchmarks.milvus_server_profile import cpu_seconds  # noqa: E402
from facenet.gallery.index import build_index  # noqa: E402
from facenet.gallery.milvus_embedded import EmbeddedMilvus  # noqa: E402
from facenet.gallery.milvus_index import MilvusIndex  # noqa: E402


def vectors(meta: dict) -> np.ndarray:
    """The collection's vectors, regenerated from its seed (as milvus_server_profile does)."""
    rng = np.random.default_rng(meta["seed"])
    return unit(rng.standard_normal((meta["n"], meta["dim"]), dtype=np.float32))


def gallery_index(folder: Path, uri: str) -> MilvusIndex:
    """The kept collection's `MilvusIndex` (its name follows this gallery path)."""
    return MilvusIndex(folder / "kept.db", 128, uri=uri, index_type="HNSW")


def build(args) -> None:
    folder = Path(args.folder).resolve()
    meta = {"n": args.n, "dim": 128, "seed": args.seed}
    base = vectors(meta)
    faiss.omp_set_num_threads(2)
    ivf = build_index(base, np.arange(len(base), dtype=np.int64), kind="ivf")
    faiss.write_index(ivf, str(folder / "ivf.faiss"))
    with EmbeddedMilvus(folder / "server") as server:
        index = gallery_index(folder, server.uri)
        if index.present:
            index.client.drop_collection(index.collection)
            index._present = False
        t0 = time.perf_counter()
        index.add(base, np.arange(len(base), dtype=np.int64))
        index.client.flush(index.collection)
        wait_for_server_index(index, len(base), args.settle)
        print(f"built {len(base):,} rows in {time.perf_counter() - t0:.0f} s: "
              f"{served_segments(index)}", flush=True)  # fmt: skip
        index.close()
    (folder / "kept.json").write_text(json.dumps(meta))


def place_self(cpus: set[int] | None) -> None:
    """Put every thread of this process (and those it starts later) on `cpus`."""
    if cpus is None:
        return
    for tid in os.listdir("/proc/self/task"):
        os.sched_setaffinity(int(tid), cpus)


def cpu_ticks() -> dict[str, np.ndarray]:
    """/proc/stat's per-CPU tick counters (user nice system idle iowait irq softirq steal)."""
    with open("/proc/stat") as f:
        rows = (line.split() for line in f if line.startswith("cpu") and line[3] != " ")
        return {r[0]: np.array(r[1:9], dtype=np.int64) for r in rows}


def cpu_line(before: dict, after: dict) -> str:
    """Each CPU's busy and stolen share between two `cpu_ticks` readings."""
    out = []
    for cpu, t in after.items():
        d = t - before[cpu]
        total = max(int(d.sum()), 1)
        out.append(f"{cpu} busy {100 * (total - d[3] - d[4]) / total:.0f}% "
                   f"steal {100 * d[7] / total:.1f}%")  # fmt: skip
    return "; ".join(out)


def threads(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))


class Paused:
    """SIGSTOP the given processes for a `with` block, SIGCONT them however it ends (SIGTERM
    and SIGINT become exceptions meanwhile, so `finally` runs); logs start and end."""

    def __init__(self, pids: list[int], log: Path | None):
        self.pids, self.log = pids, log

    def _note(self, what: str) -> None:
        line = f"{time.strftime('%H:%M:%S', time.gmtime())} UTC {what} pids {self.pids}"
        print(line, flush=True)
        if self.log:
            with open(self.log, "a") as f:
                f.write(line + "\n")

    def __enter__(self) -> Paused:
        self.t0 = time.monotonic()
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            for pid in self.pids:
                os.kill(pid, signal.SIGSTOP)
        except OSError:
            self.__exit__()  # continue those already stopped
            raise
        self._note("pause start")
        return self

    def __exit__(self, *_) -> None:
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self._note(f"pause end ({time.monotonic() - self.t0:.1f} s)")


def time_loop(calls: dict, queries: np.ndarray, k: int, rng) -> tuple[dict, dict]:
    """Milliseconds and top-1 ids per method, the methods in a new random order each query."""
    times = {name: [] for name in calls}
    top1 = {name: [] for name in calls}
    names, start, slow = list(calls), time.perf_counter(), []
    for q in queries:
        for name in rng.permutation(names):
            t0 = time.perf_counter()
            _, ids = calls[name](q[None], k)
            times[name].append((time.perf_counter() - t0) * 1000)
            top1[name].append(int(ids[0, 0]))
            if name == "milvus" and times[name][-1] > 5:
                slow.append(f"{t0 - start:.2f}({times[name][-1]:.1f})")
    print("milvus searches over 5 ms at s(ms): " + " ".join(slow[:60]), flush=True)
    return times, top1


def report(times: dict, top1: dict, exact: np.ndarray) -> None:
    print(f"{'method':>8} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'max ms':>7} "
          f"{'>5 ms':>6} {'recall@1':>8}")  # fmt: skip
    for name, t in times.items():
        t = np.asarray(t)
        p50, p90, p99 = np.percentile(t, [50, 90, 99])
        recall = float(np.mean(np.asarray(top1[name]) == exact))
        print(f"{name:>8} {p50:7.2f} {p90:7.2f} {p99:7.2f} {t.max():7.2f} "
              f"{int((t > 5).sum()):>6} {recall:8.3f}")  # fmt: skip


def start_loaded(folder: Path, meta: dict, args) -> tuple[EmbeddedMilvus, MilvusIndex]:
    """The kept server, started with the trial's settings, its collection loaded and served."""
    config = dict(item.split("=", 1) for item in args.config)
    env = dict(item.split("=", 1) for item in args.env)
    server = EmbeddedMilvus(folder / "server", cpus=args.server_cpus, env=env, **config)
    t0 = time.perf_counter()
    server.start()
    index = gallery_index(folder, server.uri)
    if not index.present:
        server.stop()
        raise SystemExit(f"error: no kept collection in {folder}; run `build` first")
    index.client.load_collection(index.collection)
    wait_for_server_index(index, meta["n"], 0)
    index.search_params["ef"] = args.ef
    # a killed server's etcd sessions come back with its embedded etcd and live on for
    # `common.session.ttl` (30 s); until then the restarted server keeps calling those dead
    # nodes at its own address (errors logged with stack traces): busy, so not timed yet
    time.sleep(max(0.0, args.after_start - (time.perf_counter() - t0)))
    print(f"server pid {server.pid} up and loaded in {time.perf_counter() - t0:.0f} s, "
          f"config {config} env {env} cpus {args.server_cpus}", flush=True)  # fmt: skip
    return server, index


def trial(args) -> None:
    folder = Path(args.folder).resolve()
    if not (folder / "kept.json").exists():  # nothing to time: exit 2
        print(f"error: no kept collection in {folder}; run `build` first", file=sys.stderr)
        raise SystemExit(2)
    meta = json.loads((folder / "kept.json").read_text())
    base = vectors(meta)
    rng = np.random.default_rng(args.seed)
    queries = make_queries(base, args.queries, rng, False)
    warm = make_queries(base, args.warmup, rng, False)
    flat = faiss.IndexFlatIP(base.shape[1])
    flat.add(base)
    faiss.omp_set_num_threads(2)
    exact = flat.search(queries, 1)[1][:, 0]
    del flat, base
    ivf = faiss.read_index(str(folder / "ivf.faiss"))
    faiss.omp_set_num_threads(1)  # one query at a time, one thread: the identify case
    server, index = start_loaded(folder, meta, args)
    place_self(args.client_cpus)
    try:
        calls = {"milvus": index.search, "ivf": ivf.search}
        for q in warm[: len(warm) // 2]:  # before pausing: load the graph's pages
            index.search(q[None], args.k)
        print(f"server threads {threads(server.pid)}, RSS {rss_mb(server.pid):.0f} MB", flush=True)
        with Paused(args.pause_pids, args.pause_log):
            time_loop(calls, warm[len(warm) // 2 :], args.k, rng)
            load0, cpu0 = open("/proc/loadavg").read().split()[0], cpu_seconds(server.pid)
            ticks = cpu_ticks()
            times, top1 = time_loop(calls, queries, args.k, rng)
            cpu = 1000 * (cpu_seconds(server.pid) - cpu0) / len(queries)
            load1, ticks = open("/proc/loadavg").read().split()[0], cpu_line(ticks, cpu_ticks())
        print(f"load {load0} -> {load1}; server CPU per search {cpu:.2f} ms; {ticks}; "
              f"layout {served_segments(index)}")  # fmt: skip
        report(times, top1, exact)
    finally:
        index.close()
        server.stop()


def cpu_set(text: str) -> set[int]:
    return {int(c) for c in text.split(",")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["build", "trial"])
    parser.add_argument("--folder", required=True, help="where the server's data is kept")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--settle", type=float, default=90.0, help="build: still layout, s")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=400, help="half before, half in pause")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--ef", type=int, default=256)
    parser.add_argument("--config", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--env", nargs="*", default=[], metavar="NAME=VALUE")
    parser.add_argument("--server-cpus", type=cpu_set, default=None, metavar="0,1")
    parser.add_argument("--client-cpus", type=cpu_set, default=None, metavar="0,1")
    parser.add_argument("--after-start", type=float, default=45.0, help="s before timing")
    parser.add_argument("--pause-pids", type=int, nargs="*", default=[])
    parser.add_argument("--pause-log", type=Path, default=None)
    args = parser.parse_args()
    Path(args.folder).mkdir(parents=True, exist_ok=True)
    try:
        build(args) if args.step == "build" else trial(args)
    except (RuntimeError, OSError) as exc:  # a server that does not start, CPUs not ours
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
