"""Where detection's CPU time goes: per MTCNN network, and the rest (pyramid, crops, NMS).

`profile(detector, calls)` runs `calls` (a list of zero-argument functions that detect) with the
detector's three networks timed by CPU time (process time, so use a one-thread detector: time
from several threads at once would be counted twice) and returns milliseconds per call for
P-Net, R-Net, O-Net and everything else. Used by detect_speed.py and whole_photos.py
(`--profile`).
"""

from __future__ import annotations

import time


def profile(detector, calls: list) -> dict[str, float]:
    """CPU ms per call: {"pnet", "rnet", "onet", "other", "total"}; `detector` must have run
    once already (its sessions loaded)."""
    nets = dict(zip(("pnet", "rnet", "onet"), detector._load(), strict=True))
    spent = dict.fromkeys(nets, 0.0)
    originals = {name: net.run for name, net in nets.items()}

    def timed(name):
        def run(outputs, feed):
            start = time.process_time()
            try:
                return originals[name](outputs, feed)
            finally:
                spent[name] += time.process_time() - start

        return run

    for name, net in nets.items():
        net.run = timed(name)
    try:
        start = time.process_time()
        for call in calls:
            call()
        total = time.process_time() - start
    finally:
        for name, net in nets.items():
            net.run = originals[name]
    out = {name: 1000 * value / len(calls) for name, value in spent.items()}
    out["total"] = 1000 * total / len(calls)
    out["other"] = out["total"] - sum(spent.values()) * 1000 / len(calls)
    return out


def line(label: str, ms: dict[str, float]) -> str:
    parts = ", ".join(f"{k} {ms[k]:.1f}" for k in ("pnet", "rnet", "onet", "other"))
    return f"  {label:34s} {ms['total']:7.1f} ms CPU: {parts}"
