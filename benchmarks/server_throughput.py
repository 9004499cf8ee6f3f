"""Server throughput beside the library's, same photos, same model, same run (issue 18).

Phases: verify only and identify only, at 1, 4 and 8 concurrent clients (a child process, see
server_load.py), against a real uvicorn server over a fresh gallery of LFW people. Beside each
round, the library does the same work one call after another in this process: `FaceNet.verify`
on the same photo files, `Gallery.identify` (same gallery file) on the same photos. Rounds are
interleaved (library, 1, 4, 8 clients; per kind), so a busy shared machine slows all alike;
medians of the rounds are printed with the ratio server / library, and the p50 / p99 latency
over all rounds. Every server verify distance is checked against the library's (|diff|).

`--profile` also says where the server's time went in each phase: the share of the
wall time its detector and embedder calls were running, how many photos / crops one call took,
the process's CPU time per wall second (cores used), and the time spent decoding uploads.

    python benchmarks/server_throughput.py [--rounds 3] [--requests 8] [--profile] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import server_load as load  # noqa: E402

LEVELS = (1, 4, 8)
KINDS = ("verify", "identify")


class Meter:
    """Wall time spent inside wrapped calls (summed over threads) and how many items they got."""

    def __init__(self):
        self.lock = threading.Lock()
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.items: dict[str, int] = {}

    def wrap(self, name: str, function, count=len):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent = time.perf_counter() - start
                with self.lock:
                    self.seconds[name] = self.seconds.get(name, 0.0) + spent
                    self.calls[name] = self.calls.get(name, 0) + 1
                    self.items[name] = self.items.get(name, 0) + (count(args[0]) if args else 1)

        return timed

    def reset(self) -> None:
        with self.lock:
            self.seconds, self.calls, self.items = {}, {}, {}


def instrument(model, meter: Meter) -> None:
    """Time the model's detector and embedder and the server's upload decoding (before the app
    is made, so whatever the server wraps them in, these are the calls it makes)."""
    from facenet.server import routes

    detector = model.detector
    detector.detect_batch = meter.wrap("detect", detector.detect_batch)
    model.embedder = _Timed(model.embedder, meter.wrap("embed", model.embedder))
    routes.decode_image = meter.wrap("decode", routes.decode_image, count=lambda _: 1)


class _Timed:
    def __init__(self, embedder, call):
        self._embedder, self._call = embedder, call
        self.runtime = getattr(embedder, "runtime", "?")

    def __call__(self, crops):
        return self._call(crops)


def library_rates(model, gallery, lfw: Path, names: list[str]) -> tuple[dict, dict]:
    """Calls per second of the library doing each kind's work once over its photos, and the
    library's verify distances by pair."""
    plan = load._plan(names, 1, 2 * len(names), ("verify",))[0]
    pairs = [[load.lfw_photo(lfw, n, i) for n, i in keys] for _, keys in plan]
    queries = [load.lfw_photo(lfw, n, i) for n in names for i in (3, 4)]
    distances = {}
    start = time.perf_counter()
    for (_, keys), (a, b) in zip(plan, pairs, strict=True):
        distances[load._pair_key(keys)] = model.verify(a, b).distance
    verify = len(pairs) / (time.perf_counter() - start)
    start = time.perf_counter()
    for photo in queries:
        gallery.identify(photo)
    identify = len(queries) / (time.perf_counter() - start)
    return {"verify": verify, "identify": identify}, distances


def run(model, lfw: Path, rounds: int, requests: int, people: int, workers: int, profile: bool):
    import httpx

    from facenet.gallery import Gallery
    from facenet.server.background import BackgroundServer

    meter = Meter()
    if profile:
        instrument(model, meter)
    rates = {k: {lvl: [] for lvl in ("library", *LEVELS)} for k in KINDS}
    latencies = {k: {lvl: [] for lvl in LEVELS} for k in KINDS}
    profiles = {(k, lvl): [] for k in KINDS for lvl in LEVELS}
    diffs, failures = [], []
    with tempfile.TemporaryDirectory() as tmp:
        names, path, gallery, app = load._start(model, lfw, people, workers, tmp)
        headers = {"X-Requested-With": "server_throughput"}
        with BackgroundServer(app) as url, httpx.Client(timeout=120, headers=headers) as setup:
            load._enrol(setup, url, lfw, names)
            library_gallery = Gallery.open(path, model)
            for _ in range(rounds):
                lib, lib_distances = library_rates(model, library_gallery, lfw, names)
                for kind in KINDS:
                    rates[kind]["library"].append(lib[kind])
                    for level in LEVELS:
                        meter.reset()
                        cpu = time.process_time()
                        done = load.hammer(url, lfw, load._plan(names, level, requests, (kind,)))
                        cpu = time.process_time() - cpu
                        n = len(done["latencies"][kind])
                        rates[kind][level].append((n + len(done["failures"])) / done["wall_s"])
                        latencies[kind][level].extend(done["latencies"][kind])
                        failures.extend(done["failures"])
                        for key, distance in done["distances"].items():
                            diffs.append(abs(distance - lib_distances[key]))
                        if profile:
                            profiles[kind, level].append(_profile(meter, done["wall_s"], cpu))
            library_gallery.close()
        gallery.close()
    return _report(rates, latencies, profiles, diffs, failures, model, rounds, requests)


def _profile(meter: Meter, wall: float, cpu: float) -> dict:
    """One phase: share of its wall time inside each timed call, items per call,
    cores used (process CPU seconds per wall second; the phase's client process excluded, the
    hammer's child start-up included in neither)."""
    out = {"cores_used": cpu / wall}
    for name, seconds in meter.seconds.items():
        out[f"{name}_busy"] = seconds / wall
        out[f"{name}_items_per_call"] = meter.items[name] / max(meter.calls[name], 1)
    return out


def _report(rates, latencies, profiles, diffs, failures, model, rounds, requests) -> dict:
    medians = {
        k: {str(lvl): statistics.median(v) for lvl, v in r.items()} for k, r in rates.items()
    }
    report = {
        "model": repr(model),
        "rounds": rounds,
        "requests_per_client": requests,
        "load_average": os.getloadavg(),
        "rate_per_s": medians,
        "ratio_to_library": {
            k: {str(lvl): medians[k][str(lvl)] / medians[k]["library"] for lvl in LEVELS}
            for k in KINDS
        },
        "latency_ms": {
            k: {str(lvl): load._latency_summary({k: v})[k] for lvl, v in r.items()}
            for k, r in latencies.items()
        },
        "max_distance_diff": max(diffs) if diffs else None,
        "verify_answers_checked": len(diffs),
        "failed": len(failures),
        "failures": failures[:5],
    }
    if any(profiles.values()):
        report["profile"] = {
            f"{k} {lvl} clients": {key: statistics.median(p[key] for p in ps) for key in ps[0]}
            for (k, lvl), ps in profiles.items()
            if ps
        }
    return report


def _print(report: dict) -> None:
    print(f"{report['model']}; {report['rounds']} rounds, {report['requests_per_client']} "
          f"requests per client; load average after: "
          f"{' '.join(f'{x:.2f}' for x in report['load_average'])}")  # fmt: skip
    for kind in KINDS:
        r, ratio = report["rate_per_s"][kind], report["ratio_to_library"][kind]
        print(f"\n{kind}: library {r['library']:.2f}/s (one call after another)")
        print(f"  {'clients':>7} {'server req/s':>12} {'/ library':>9} {'p50 ms':>8} {'p99 ms':>8} "
              f"{'p99/p50':>7}")  # fmt: skip
        for level in LEVELS:
            lat = report["latency_ms"][kind][str(level)]
            spread = lat["p99"] / lat["p50"]
            print(f"  {level:>7} {r[str(level)]:>12.2f} {ratio[str(level)]:>9.2f} "
                  f"{lat['p50']:>8.0f} {lat['p99']:>8.0f} {spread:>7.2f}")  # fmt: skip
    diff = report["max_distance_diff"]
    print(
        f"\nverify distances, server vs library: max |diff| {diff:.2e} over "
        f"{report['verify_answers_checked']} answers; {report['failed']} failed requests"
    )
    for phase, prof in report.get("profile", {}).items():
        print(f"profile, {phase} (medians): " + ", ".join(f"{k} {v:.2f}" for k, v in prof.items()))
    for failure in report["failures"]:
        print(f"  failure: {failure}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="Model name or file (default: the bundled default).")
    parser.add_argument("--lfw", type=Path, default=load.DEFAULT_LFW)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=8, help="Requests per client a phase.")
    parser.add_argument("--people", type=int, default=5)
    parser.add_argument("--workers", type=int, default=8, help="Server requests at once.")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from facenet import FaceNet

    model = FaceNet.load(args.model)
    report = run(model, args.lfw, args.rounds, args.requests, args.people, args.workers,
                 args.profile)  # fmt: skip
    print(json.dumps(report)) if args.json else _print(report)
    return 0 if report["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
