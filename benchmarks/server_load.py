"""Server load test: N concurrent clients calling verify and identify on a real uvicorn server.

Loopback only; a fixed number of requests; stops by itself. It enrols a few LFW people into a
fresh gallery through the API, then each client sends `--requests` requests, alternating verify
(two photos of one person, or of two people) and identify (a photo not enrolled). It reports
throughput, p50/p99 latency per endpoint and failed requests, and checks that the gallery is
intact afterwards (same people and face counts, through the API and re-read from disk).
Exit status 1 if any request failed or the gallery changed.

    python benchmarks/server_load.py --model model.keras                  # 8 clients x 20
    python benchmarks/server_load.py --model model.keras --clients 4 --requests 5 --json
"""

from __future__ import annotations

import argparse
import json
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


def run_load(
    model,
    lfw: Path,
    *,
    clients: int = 8,
    requests: int = 20,
    people: int = 5,
    workers: int = 2,
    workdir: Path | None = None,
) -> dict:
    """Run the load test against a fresh gallery in `workdir` (a temporary one by default)."""
    import httpx

    from facenet.gallery import Gallery
    from facenet.server import Settings, create_app
    from facenet.server.background import BackgroundServer

    names = [n for n in PEOPLE if all(lfw_photo(lfw, n, i).is_file() for i in (1, 2, 3, 4))]
    names = names[:people]
    if len(names) < 2:
        raise SystemExit(f"{lfw}: need LFW photos of at least 2 of {', '.join(PEOPLE)}")
    photos = {(n, i): lfw_photo(lfw, n, i).read_bytes() for n in names for i in (1, 2, 3, 4)}

    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        path = Path(tmp) / "load.db"
        gallery = Gallery.create(path, model)
        app = create_app(model, gallery, Settings(workers=workers))
        try:
            client_header = {"X-Requested-With": "server_load"}  # gallery changes need it
            with (
                BackgroundServer(app) as url,
                httpx.Client(timeout=120, headers=client_header) as setup,
            ):
                for name in names:
                    files = [("images", (f"{name}_{i}.jpg", photos[name, i])) for i in (1, 2)]
                    r = setup.post(f"{url}/api/v1/people", data={"name": name}, files=files)
                    r.raise_for_status()
                before = gallery_snapshot(setup, url)
                results = _hammer(url, names, photos, clients, requests)
                after = gallery_snapshot(setup, url)
        finally:
            gallery.close()
        with Gallery.open(path) as reopened:
            on_disk = sorted((p.name, p.faces) for p in reopened.people())
            disk_faces = len(reopened)

    wall = results.pop("wall_s")
    latencies = results.pop("latencies")
    failures = results.pop("failures")
    total = sum(len(v) for v in latencies.values())
    report = {
        "clients": clients,
        "requests_per_client": requests,
        "requests": total + len(failures),
        "failed": len(failures),
        "failures": failures[:5],
        "wall_s": round(wall, 3),
        "throughput_rps": round((total + len(failures)) / wall, 2),
        "latency_ms": {
            kind: {
                "n": len(values),
                "p50": round(1000 * percentile(values, 50), 1),
                "p99": round(1000 * percentile(values, 99), 1),
            }
            for kind, values in latencies.items()
        },
        "gallery_before": before,
        "gallery_intact": before == after == on_disk and disk_faces == sum(n for _, n in before),
        "workers": workers,
    }
    return report


def _hammer(url: str, names: list[str], photos: dict, clients: int, requests: int) -> dict:
    import httpx

    latencies: dict[str, list[float]] = {"verify": [], "identify": []}
    failures: list[str] = []
    lock = threading.Lock()
    start_line = threading.Barrier(clients)

    def client_loop(c: int) -> None:
        with httpx.Client(timeout=120) as client:
            start_line.wait()
            for r in range(requests):
                k = c * requests + r
                a = names[k % len(names)]
                if k % 2 == 0:
                    b = a if k % 4 == 0 else names[(k + 1) % len(names)]
                    kind, files = "verify", [
                        ("image1", ("a.jpg", photos[a, 3])), ("image2", ("b.jpg", photos[b, 4]))
                    ]  # fmt: skip
                else:
                    kind, files = "identify", [("image", ("q.jpg", photos[a, 3 + k % 2]))]
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

    threads = [threading.Thread(target=client_loop, args=(c,)) for c in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"wall_s": time.perf_counter() - t0, "latencies": latencies, "failures": failures}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="Model file (default: the bundled model).")
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW, help="LFW (deep-funneled) folder.")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=20, help="Requests per client.")
    parser.add_argument("--people", type=int, default=5, help="People enrolled (2 photos each).")
    parser.add_argument("--workers", type=int, default=2, help="Server inference threads.")
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
