"""Server load test: N concurrent clients calling verify and identify on a real uvicorn server.

Loopback only; a fixed number of requests; stops by itself. It enrols a few LFW people into a
fresh gallery through the API, then each client sends `--requests` requests, alternating verify
(two photos of one person, or of two people) and identify (a photo not enrolled). It reports
throughput, p50/p99 latency per endpoint and failed requests, and checks that the gallery is
intact afterwards (same people and face counts, through the API and re-read from disk).
Exit status 1 if any request failed or the gallery changed. The clients run in a child process
(their HTTP work does not share the server's interpreter lock).

    python benchmarks/server_load.py --model model.keras                  # 8 clients x 20
    python benchmarks/server_load.py --model model.keras --clients 4 --requests 5 --json

The side-by-side throughput run against the library is benchmarks/server_throughput.py.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

DEFAULT_LFW = Path(__file__).resolve().parents[2] / "shared" / "data" / "lfw" / "lfw-deepfunneled"
#: LFW people with many photos: photos 1-2 are enrolled, 3+ are queries.
PEOPLE = (
    "George_W_Bush", "Colin_Powell", "Tony_Blair", "Donald_Rumsfeld", "Gerhard_Schroeder",
    "Ariel_Sharon", "Hugo_Chavez", "Junichiro_Koizumi", "Jean_Chretien", "John_Ashcroft",
)  # fmt: skip


def lfw_photo(lfw: Path, name: str, index: int) -> Path:
    return lfw / name / f"{name}_{index:04d}.jpg"


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def gallery_snapshot(client, url: str) -> list[tuple[str, int]]:
    people = client.get(f"{url}/api/v1/people").json()
    return sorted((p["name"], p["faces"]) for p in people)


def _plan(names: list[str], clients: int, requests: int, kinds=("verify", "identify")) -> list:
    """Each client's requests: (kind, [(person, photo index), ...]); verify pairs are two photos
    of one person or of two people, identify photos are not enrolled (photos 3 and 4)."""
    plan = []
    for c in range(clients):
        mine = []
        for r in range(requests):
            k = c * requests + r
            a = names[k % len(names)]
            kind = kinds[k % len(kinds)]
            if kind == "verify":
                b = a if (k // len(kinds)) % 2 == 0 else names[(k + 1) % len(names)]
                mine.append(("verify", [(a, 3), (b, 4)]))
            else:
                mine.append(("identify", [(a, 3 + (k // len(kinds)) % 2)]))
        plan.append(mine)
    return plan


def _start(model, lfw: Path, people: int, workers: int, tmp: str):
    """A fresh gallery of `people` LFW people (photos 1-2 each, enrolled through the API) and
    the app serving it."""
    from facenet.gallery import Gallery
    from facenet.server import Settings, create_app

    names = [n for n in PEOPLE if all(lfw_photo(lfw, n, i).is_file() for i in (1, 2, 3, 4))]
    names = names[:people]
    if len(names) < 2:
        raise SystemExit(f"{lfw}: need LFW photos of at least 2 of {', '.join(PEOPLE)}")
    path = Path(tmp) / "load.db"
    gallery = Gallery.create(path, model)
    app = create_app(model, gallery, Settings(workers=workers))
    return names, path, gallery, app


def _enrol(client, url: str, lfw: Path, names: list[str]) -> None:
    for name in names:
        files = [
            ("images", (f"{name}_{i}.jpg", lfw_photo(lfw, name, i).read_bytes())) for i in (1, 2)
        ]
        r = client.post(f"{url}/api/v1/people", data={"name": name}, files=files)
        r.raise_for_status()


def run_load(
    model,
    lfw: Path,
    *,
    clients: int = 8,
    requests: int = 20,
    people: int = 5,
    workers: int = 8,
    workdir: Path | None = None,
) -> dict:
    """Run the load test against a fresh gallery in `workdir` (a temporary one by default)."""
    import httpx

    from facenet.gallery import Gallery
    from facenet.server.background import BackgroundServer

    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        names, path, gallery, app = _start(model, lfw, people, workers, tmp)
        try:
            client_header = {"X-Requested-With": "server_load"}  # gallery changes need it
            with (
                BackgroundServer(app) as url,
                httpx.Client(timeout=120, headers=client_header) as setup,
            ):
                _enrol(setup, url, lfw, names)
                before = gallery_snapshot(setup, url)
                results = hammer(url, lfw, _plan(names, clients, requests))
                after = gallery_snapshot(setup, url)
        finally:
            gallery.close()
        with Gallery.open(path) as reopened:
            on_disk = sorted((p.name, p.faces) for p in reopened.people())
            disk_faces = len(reopened)

    wall = results["wall_s"]
    latencies = results["latencies"]
    failures = results["failures"]
    total = sum(len(v) for v in latencies.values())
    return {
        "clients": clients,
        "requests_per_client": requests,
        "requests": total + len(failures),
        "failed": len(failures),
        "failures": failures[:5],
        "wall_s": round(wall, 3),
        "throughput_rps": round((total + len(failures)) / wall, 2),
        "latency_ms": _latency_summary(latencies),
        "gallery_before": before,
        "gallery_intact": before == after == on_disk and disk_faces == sum(n for _, n in before),
        "workers": workers,
    }


def _latency_summary(latencies: dict[str, list[float]]) -> dict:
    return {
        kind: {
            "n": len(values),
            "p50": round(1000 * percentile(values, 50), 1),
            "p99": round(1000 * percentile(values, 99), 1),
        }
        for kind, values in latencies.items()
    }


def hammer(url: str, lfw: Path, plan: list) -> dict:
    """Run `plan` (one list of requests per client) from a child process, so the clients' own
    Python work does not compete with the server's threads for the interpreter lock."""
    spec = json.dumps({"url": url, "lfw": str(lfw), "plan": plan})
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--hammer"],
        input=spec, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"client process failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def _hammer_main() -> None:
    """The child process: read the spec from stdin, run the clients, print the results."""
    spec = json.loads(sys.stdin.read())
    print(json.dumps(_hammer(spec["url"], Path(spec["lfw"]), spec["plan"])))


def _hammer(url: str, lfw: Path, plan: list) -> dict:
    import httpx

    photos: dict[tuple[str, int], bytes] = {}
    for client_plan in plan:
        for _, keys in client_plan:
            for name, i in keys:
                photos.setdefault((name, i), lfw_photo(lfw, name, i).read_bytes())
    latencies: dict[str, list[float]] = {"verify": [], "identify": []}
    distances: dict[str, float] = {}
    failures: list[str] = []
    lock = threading.Lock()
    start_line = threading.Barrier(len(plan))

    def client_loop(requests: list) -> None:
        with httpx.Client(timeout=300) as client:
            client.get(f"{url}/api/v1/health")  # connect before the start line
            start_line.wait()
            for kind, keys in requests:
                fields = ("image1", "image2") if kind == "verify" else ("image",)
                files = [
                    (field, (f"{n}_{i}.jpg", photos[n, i]))
                    for field, (n, i) in zip(fields, keys, strict=True)
                ]
                t0 = time.perf_counter()
                try:
                    response = client.post(f"{url}/api/v1/{kind}", files=files)
                    ok = response.status_code == 200
                    detail = f"{kind}: HTTP {response.status_code} {response.text[:200]}"
                except httpx.HTTPError as exc:
                    ok, detail = False, f"{kind}: {type(exc).__name__}: {exc}"
                elapsed = time.perf_counter() - t0
                with lock:
                    (latencies[kind].append(elapsed) if ok else failures.append(detail))
                    if ok and kind == "verify":
                        distances[_pair_key(keys)] = response.json()["distance"]

    threads = [threading.Thread(target=client_loop, args=(p,)) for p in plan]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {
        "wall_s": time.perf_counter() - t0,
        "latencies": latencies,
        "failures": failures,
        "distances": distances,
    }


def _pair_key(keys) -> str:
    return "|".join(f"{n}_{i}" for n, i in keys)


def main(argv: list[str] | None = None) -> int:
    if (argv if argv is not None else sys.argv[1:]) == ["--hammer"]:
        _hammer_main()
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="Model file (default: the bundled model).")
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW, help="LFW (deep-funneled) folder.")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=20, help="Requests per client.")
    parser.add_argument("--people", type=int, default=5, help="People enrolled (2 photos each).")
    parser.add_argument("--workers", type=int, default=8, help="Server requests at once.")
    parser.add_argument("--json", action="store_true", help="Print the report as one JSON line.")
    args = parser.parse_args(argv)

    from facenet import FaceNet

    model = FaceNet.load(args.model)
    report = run_load(
        model, args.lfw, clients=args.clients, requests=args.requests, people=args.people,
        workers=args.workers,
    )  # fmt: skip
    if args.json:
        print(json.dumps(report))
    else:
        print(f"model {model!r}")
        print(
            f"{report['requests']} requests from {args.clients} clients in {report['wall_s']} s: "
            f"{report['throughput_rps']} req/s, {report['failed']} failed"
        )
        for kind, lat in report["latency_ms"].items():
            print(
                f"  {kind:9s} n={lat['n']:4d}  p50 {lat['p50']:8.1f} ms  p99 {lat['p99']:8.1f} ms"
            )
        people = ", ".join(f"{n} ({k})" for n, k in report["gallery_before"])
        print(f"gallery {'intact' if report['gallery_intact'] else 'CHANGED'}: {people}")
        for failure in report["failures"]:
            print(f"  failure: {failure}")
    return 0 if report["failed"] == 0 and report["gallery_intact"] else 1


if __name__ == "__main__":
    sys.exit(main())
