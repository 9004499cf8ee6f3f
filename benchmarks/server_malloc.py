"""What the server's memory settings cost: CPU time per `FaceNet.verify` under glibc malloc
mmap thresholds (the server fixes one for its whole process, `server/memory.py`), with and
without `malloc_trim(0)` after every call.

Each setting runs in its own process (a threshold is process-wide), the settings in turn for
`--rounds` rounds; the median CPU time (process time, every thread) per verify of LFW pairs is
printed per setting, and its ratio to glibc's default. CPU time, not wall time: it is what the
setting adds (page faults, zeroing, system calls) and depends little on other load.

    python benchmarks/server_malloc.py [--rounds 3] [--pairs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lfw_common import DEFAULT_LFW  # noqa: E402

SETTINGS = {  # name: (mmap threshold in MiB or None for glibc's default, trim after each call)
    "glibc default": (None, False),
    "1 MiB (before)": (1, False),
    "1 MiB + trim after each call (before)": (1, True),
    "4 MiB (now)": (4, False),
    "16 MiB": (16, False),
}
PEOPLE = ("George_W_Bush", "Colin_Powell", "Tony_Blair", "Donald_Rumsfeld", "Gerhard_Schroeder")


def child(threshold: int | None, trim: bool, pairs: int, lfw: Path) -> float:
    """CPU milliseconds per verify in this process with the given setting."""
    import ctypes
    import time

    from facenet import FaceNet
    from facenet.images import load_image

    libc = ctypes.CDLL("libc.so.6")
    if threshold is not None:
        libc.mallopt(-3, threshold << 20)  # M_MMAP_THRESHOLD
    names = PEOPLE[:pairs]
    photos = [
        (load_image(lfw / n / f"{n}_0003.jpg"), load_image(lfw / n / f"{n}_0004.jpg"))
        for n in names
    ]
    model = FaceNet.load()
    for a, b in photos:  # warm-up
        model.verify(a, b)
    used = []
    for _ in range(3):
        start = time.process_time()
        for a, b in photos:
            model.verify(a, b)
            if trim:
                libc.malloc_trim(0)
        used.append(1000 * (time.process_time() - start) / len(photos))
    return statistics.median(used)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        threshold, trim = json.loads(args.child)
        print(child(threshold, trim, args.pairs, args.lfw))
        return
    if not sys.platform.startswith("linux"):
        sys.exit("glibc malloc settings: Linux only")
    cpu: dict[str, list[float]] = {name: [] for name in SETTINGS}
    load = os.getloadavg()[0]
    for _ in range(args.rounds):
        for name, setting in SETTINGS.items():
            done = subprocess.run(
                [sys.executable, __file__, "--child", json.dumps(setting),
                 "--pairs", str(args.pairs), "--lfw", str(args.lfw)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            cpu[name].append(float(done.stdout.strip().splitlines()[-1]))
    print(f"CPU ms per FaceNet.verify (default model, {args.pairs} LFW pairs, {args.rounds} "
          f"rounds, medians); load average {load:.1f} -> {os.getloadavg()[0]:.1f}")  # fmt: skip
    base = statistics.median(cpu["glibc default"])
    for name, values in cpu.items():
        value = statistics.median(values)
        print(f"  {name:40s} {value:7.1f} ms  {value / base:5.2f}x the default")


if __name__ == "__main__":
    main()
