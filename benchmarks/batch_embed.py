"""Images/s of `facenet embed SRC --out DIR --engine local` beside `--engine ray`, same photos.

The first N LFW photos (sorted paths) go through both engines into fresh folders in one run:
decode, detect, align, embed, write Parquet. Printed per engine: wall time (Ray's includes
starting Ray and loading the model in each actor), images/s over the whole run, and the
seconds until the first batch was done (start-up plus one batch).

    python benchmarks/batch_embed.py [--n 2000] [--workers 2] [--batch-size 32] [--model NAME]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facenet.batch import embed_to_folder  # noqa: E402

LFW = Path(__file__).resolve().parents[2] / "shared" / "data" / "lfw" / "lfw-deepfunneled"


def run(engine: str, listing: Path, out: Path, args) -> dict:
    """One engine on the listed photos: wall seconds, images/s, seconds to the first batch."""
    stamps: list[float] = []
    start = time.perf_counter()
    report = embed_to_folder(
        listing, out, model=args.model, engine=engine, batch_size=args.batch_size,
        workers=args.workers, on_image=lambda _row: stamps.append(time.perf_counter()),
    )  # fmt: skip
    wall = time.perf_counter() - start
    first = stamps[0] - start if stamps else float("nan")
    return {"wall": wall, "rate": len(stamps) / wall, "first": first, "faces": report.faces,
            "failed": len(report.failures)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="LFW photos")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="Ray actors")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", default=None, help="default: the default bundled model")
    parser.add_argument("--engines", nargs="+", default=["local", "ray"])
    args = parser.parse_args()
    photos = sorted(LFW.glob("*/*.jpg"))[: args.n]
    if not photos:
        sys.exit(f"no LFW photos under {LFW}")
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "photos.csv"
        listing.write_text("path\n" + "\n".join(map(str, photos)) + "\n")
        print(f"{len(photos)} LFW photos, batch {args.batch_size}, Ray workers {args.workers}, "
              f"{os.cpu_count()} cores")  # fmt: skip
        header = f"{'engine':8}{'wall s':>9}{'img/s':>9}{'first batch s':>15}"
        print(f"{header}{'faces':>7}{'failed':>8}")
        for engine in args.engines:
            r = run(engine, listing, Path(tmp) / engine, args)
            print(f"{engine:8}{r['wall']:9.1f}{r['rate']:9.2f}{r['first']:15.1f}"
                  f"{r['faces']:7d}{r['failed']:8d}")  # fmt: skip


if __name__ == "__main__":
    main()
