"""How long the server's reads take while a photo upload is being detected and embedded.

A real uvicorn server on loopback (the default model, a fresh gallery) gets one upload of
`--photos` LFW photos (a library upload, `POST /api/v1/library/photos`, then a gallery
enrolment, `POST /api/v1/people`); meanwhile a client asks for the library's counts and the
gallery's people every `--interval` seconds. The same reads on the idle server are the
baseline: each row prints its median and its slowest read over the idle median. Until
2026-12-01 an upload held the gallery's lock through its inference, so a read made during it
waited for the rest of the upload (docs/performance.md has both runs).

    python benchmarks/server_reads_during_upload.py [--photos 12] [--interval 0.05]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

DEFAULT_LFW = Path(__file__).resolve().parents[2] / "shared" / "data" / "lfw" / "lfw-deepfunneled"
PEOPLE = ("George_W_Bush", "Colin_Powell", "Tony_Blair", "Donald_Rumsfeld")
READS = ("/api/v1/library", "/api/v1/people")
HEADER = {"X-Requested-With": "server_reads_during_upload"}  # changes need it (CSRF guard)


def lfw_photos(lfw: Path, count: int) -> list[Path]:
    """`count` LFW photos, taken in turn from a few people with many."""
    files = [sorted((lfw / name).glob("*.jpg")) for name in PEOPLE]
    return [files[i % len(files)][i // len(files)] for i in range(count)]


def reads_until(client, url: str, done: threading.Event, interval: float) -> list[float]:
    """Latencies (ms) of the reads made, one every `interval` s, until `done` is set."""
    times = []
    while not done.is_set():
        for path in READS:
            start = time.perf_counter()
            client.get(url + path).raise_for_status()
            times.append(1000 * (time.perf_counter() - start))
        time.sleep(interval)
    return times


def during(client, url: str, upload, interval: float) -> tuple[float, list[float]]:
    """(upload seconds, read latencies in ms) with `upload()` running in a thread."""
    done = threading.Event()
    result = {}

    def run():
        start = time.perf_counter()
        try:
            result["response"] = upload()
        finally:
            result["seconds"] = time.perf_counter() - start
            done.set()

    worker = threading.Thread(target=run)
    worker.start()
    times = reads_until(client, url, done, interval)
    worker.join()
    result["response"].raise_for_status()
    return result["seconds"], times


def row(label: str, times: list[float], idle: float, seconds: float | None = None) -> str:
    p50, p90, top = np.percentile(times, 50), np.percentile(times, 90), max(times)
    upload = f"{seconds:9.2f}" if seconds is not None else f"{'':9}"
    return (
        f"{label:<28}{upload}{len(times):7d}{p50:9.1f}{p90:9.1f}{top:9.1f}"
        f"{p50 / idle:9.1f}x{top / idle:9.0f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=12)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW)
    args = parser.parse_args()

    import httpx

    from facenet import FaceNet
    from facenet.gallery import Gallery
    from facenet.server import Settings, create_app
    from facenet.server.background import BackgroundServer

    photos = lfw_photos(args.lfw, 2 * args.photos)
    model = FaceNet.load()
    gallery = Gallery.create(Path(tempfile.mkdtemp(prefix="reads_upload_")) / "g.db", model)
    app = create_app(model, gallery, Settings(max_files=max(args.photos, 16)))
    with BackgroundServer(app) as url, httpx.Client(timeout=600, headers=HEADER) as client:

        def files(batch):
            return [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in batch]

        done = threading.Event()
        threading.Timer(2.0, done.set).start()
        idle_times = reads_until(client, url, done, args.interval)
        idle = float(np.median(idle_times))
        print(f"{'reads while':<28}{'upload s':>9}{'reads':>7}{'p50 ms':>9}{'p90 ms':>9}"
              f"{'max ms':>9}{'p50/idle':>10}{'max/idle':>10}")  # fmt: skip
        print(row("idle (baseline)", idle_times, idle))
        library = photos[: args.photos]
        seconds, times = during(
            client, url, lambda: client.post(url + "/api/v1/library/photos", files=files(library)),
            args.interval,
        )  # fmt: skip
        print(row(f"library upload ({len(library)} photos)", times, idle, seconds))
        enrolment = photos[args.photos :]
        seconds, times = during(
            client, url,
            lambda: client.post(url + "/api/v1/people", data={"name": "Someone"},
                                files=files(enrolment)),
            args.interval,
        )  # fmt: skip
        print(row(f"enrolment ({len(enrolment)} photos)", times, idle, seconds))
    gallery.close()


if __name__ == "__main__":
    main()
