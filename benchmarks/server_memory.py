"""Server memory under hostile-but-legal photos: resident memory before, during and after a burst.

Starts `facenet serve` in a subprocess on 127.0.0.1 (a free port), warms it up with normal use
(three rounds of a portrait and a group photo of 9 faces), reads its resident memory (VmRSS),
then sends a burst of identify requests alternating
  - a JPEG that claims 6000 x 6000 pixels (a real, plain one: decodable), and
  - a 5000 x 5000 photo tiled with 3,249 faces (57 x 57),
sampling resident memory every 50 ms. The burst takes about 4 minutes on 2 CPU cores (the
crowded photo takes about 20 s to detect). It reports the baseline, the peak, the memory a second
after the burst, and the time of each kind of request; exit status 1 if memory after the burst
is more than 10% over the baseline or a request failed with a 5xx.

    python benchmarks/server_memory.py                      # this checkout, 20 requests
    python benchmarks/server_memory.py --source ../main     # another checkout, for comparison
    python benchmarks/server_memory.py --requests 6 --json
    python benchmarks/server_memory.py --requests 16 --clients 8   # concurrent requests
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FACE = ROOT.parent / "shared/data/lfw/lfw-deepfunneled/George_W_Bush/George_W_Bush_0001.jpg"


def plain_jpeg(width: int, height: int) -> bytes:
    """A real JPEG of one grey: small on disk (about 0.5 MB at 6000 x 6000), huge decoded."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), (128, 128, 128)).save(out, "JPEG", quality=10)
    return out.getvalue()


def tiled_faces(face: Path, side: int, per_row: int, quality: int = 60) -> bytes:
    """A side x side JPEG tiled with per_row x per_row copies of a face photo."""
    tile = side // per_row
    with Image.open(face) as image:
        small = np.asarray(image.convert("RGB").resize((tile, tile), Image.BILINEAR))
    canvas = np.full((side, side, 3), 255, np.uint8)
    for row in range(per_row):
        for col in range(per_row):
            canvas[row * tile : (row + 1) * tile, col * tile : (col + 1) * tile] = small
    out = io.BytesIO()
    Image.fromarray(canvas).save(out, "JPEG", quality=quality)
    return out.getvalue()


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(source: Path, workdir: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(source)}
    command = [sys.executable, "-m", "facenet", "serve", "--gallery", str(workdir / "g.db")]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    return subprocess.Popen(
        command, cwd=source, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def wait_ready(client, url: str, server: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited: {server.stderr.read().decode()[-2000:]}")
        try:
            if client.get(f"{url}/api/v1/health").status_code == 200:
                return
        except Exception:  # not listening yet
            pass
        time.sleep(0.5)
    raise RuntimeError("the server did not start")


class Sampler:
    """Peak resident memory of a process, sampled every `period` seconds in a thread."""

    def __init__(self, pid: int, period: float = 0.05):
        self.pid, self.period, self.peak = pid, period, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(self.period)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def burst(url: str, face: Path, requests: int, clients: int = 1) -> list[dict]:
    """Alternate the two hostile requests, from `clients` connections at once (request i on
    client i % clients); one record per request (kind, status, seconds)."""
    import httpx

    calls = {
        "identify 6000x6000": plain_jpeg(6000, 6000),
        "identify 3,249 faces": tiled_faces(face, 5000, 57),
    }
    records: list[dict] = []

    def one_client(first: int) -> None:
        with httpx.Client(timeout=600) as client:
            for i in range(first, requests, clients):
                records.append(send(client, url, *list(calls.items())[i % 2]))

    threads = [threading.Thread(target=one_client, args=(c,)) for c in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return records


def send(client, url: str, kind: str, photo: bytes) -> dict:
    """One identify request; its record."""
    start = time.perf_counter()
    r = client.post(f"{url}/api/v1/identify", files=[("image", ("x.jpg", photo))])
    body = r.json() if "json" in r.headers.get("content-type", "") else {}
    return {
        "kind": kind,
        "status": r.status_code,
        "seconds": round(time.perf_counter() - start, 2),
        "faces": len(body.get("faces", [])),
        "faces_found": body.get("faces_found"),
    }


def run(source: Path, face: Path, requests: int, clients: int = 1) -> dict:
    import httpx

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp, httpx.Client(timeout=600) as client:
        server = start_server(source, Path(tmp), port)
        try:
            wait_ready(client, url, server)
            # normal use first: a portrait and a group photo of 9 faces
            portrait, group = face.read_bytes(), tiled_faces(face, 750, 3, quality=90)
            for path, field, photo in 3 * [
                ("identify", "image", portrait),
                ("cluster", "images", group),
            ]:
                r = client.post(f"{url}/api/v1/{path}", files=[(field, ("w.jpg", photo))])
                r.raise_for_status()
            time.sleep(1.0)
            baseline = rss_mb(server.pid)
            with Sampler(server.pid) as sampler:
                records = burst(url, face, requests, clients)
            time.sleep(1.0)
            after = rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(30)
    kinds = sorted({r["kind"] for r in records})
    return {
        "source": str(source),
        "requests": len(records),
        "clients": clients,
        "baseline_mb": round(baseline, 1),
        "peak_mb": round(sampler.peak, 1),
        "after_mb": round(after, 1),
        "after_over_baseline": round(after / baseline, 3),
        "statuses": sorted({r["status"] for r in records}),
        "per_kind": {
            kind: {
                "n": sum(r["kind"] == kind for r in records),
                "max_seconds": max(r["seconds"] for r in records if r["kind"] == kind),
                "faces": max(r["faces"] for r in records if r["kind"] == kind),
                "faces_found": max(r["faces_found"] or 0 for r in records if r["kind"] == kind),
            }
            for kind in kinds
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=ROOT, help="checkout to serve from")
    parser.add_argument("--face", type=Path, default=DEFAULT_FACE, help="face photo to tile")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--clients", type=int, default=1, help="connections sending at once")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    report = run(args.source.resolve(), args.face, args.requests, args.clients)
    if args.json:
        print(json.dumps(report))
    else:
        print(
            f"{report['requests']} requests from {report['clients']} clients: resident memory "
            f"{report['baseline_mb']} MB before, "
            f"peak {report['peak_mb']} MB, {report['after_mb']} MB after "
            f"({report['after_over_baseline']:.3f} x baseline); statuses {report['statuses']}"
        )
        for kind, row in report["per_kind"].items():
            print(f"  {kind}: {row['n']} requests, at most {row['max_seconds']} s, "
                  f"{row['faces']} of {row['faces_found']} faces answered")  # fmt: skip
    failed = any(status >= 500 for status in report["statuses"])
    return 1 if failed or report["after_over_baseline"] > 1.10 else 0


if __name__ == "__main__":
    sys.exit(main())
