"""Open-set identification: thresholds for a per-probe false-accept rate, and what they cost.

Verification compares two faces; identification compares one probe with every enrolled face,
so a stranger gets as many chances to be falsely accepted as the gallery has people. The
threshold that keeps strangers out is therefore set on the distribution of a stranger's
*nearest* gallery distance, not on pair distances. All distances are squared L2 on unit rows.
"""

from __future__ import annotations

import numpy as np


def nearest_distances(probes: np.ndarray, gallery: np.ndarray, block: int = 4096) -> tuple:
    """(distance, index) of each probe's nearest gallery row."""
    probes = np.asarray(probes, np.float32)
    gallery = np.asarray(gallery, np.float32)
    best = np.full(len(probes), np.inf, np.float32)
    where = np.zeros(len(probes), np.int64)
    for start in range(0, len(gallery), block):
        part = gallery[start : start + block]
        d = np.maximum(2.0 - 2.0 * probes @ part.T, 0.0)
        i = d.argmin(axis=1)
        closer = d[np.arange(len(probes)), i] < best
        best[closer] = d[np.arange(len(probes)), i][closer]
        where[closer] = start + i[closer]
    return best, where


def threshold_at_far(stranger_nearest: np.ndarray, far: float) -> float:
    """The largest threshold at which at most `far` of the strangers are accepted.

    A stranger is accepted when its nearest gallery distance is <= the threshold; the threshold
    sits midway between the last accepted and the first rejected stranger (ties are rejected
    together, so the rate never exceeds `far`).
    """
    d = np.sort(np.asarray(stranger_nearest, np.float64)[np.isfinite(stranger_nearest)])
    if len(d) == 0:
        raise ValueError("no stranger distances to set an open-set threshold on")
    if not 0 <= far < 1:
        raise ValueError(f"far must be in [0, 1); got {far}")
    k = int(np.floor(far * len(d)))
    if k >= len(d):
        return float(d[-1])
    accepted = d[d < d[k]]
    if len(accepted) == 0:
        return float(d[0] * (1 - 1e-6))
    return float((accepted[-1] + d[k]) / 2)


def others_nearest(embeddings: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per face: nearest distance to another person's face (as if its person were a stranger)
    and to another face of its own person (inf when it has none)."""
    x = np.asarray(embeddings, np.float32)
    labels = np.asarray(labels)
    d = np.maximum(2.0 - 2.0 * x @ x.T, 0.0)
    np.fill_diagonal(d, np.inf)
    same = labels[:, None] == labels[None, :]
    other = np.where(same, np.inf, d).min(axis=1)
    own = np.where(same, d, np.inf).min(axis=1)
    return other, own


def calibrate_gallery(embeddings: np.ndarray, labels: np.ndarray, far: float = 0.01) -> dict:
    """An identification threshold from a gallery's own faces (leave-one-person-out strangers).

    Each face plays a stranger against everyone else: its nearest other-person distance.
    Faces with another face of their own person also play a genuine probe: identified when
    that own face is nearer than every other person's and within the threshold.
    """
    other, own = others_nearest(embeddings, labels)
    threshold = threshold_at_far(other, far)
    mated = np.isfinite(own)
    identified = mated & (own < other) & (own <= threshold)
    return {
        "threshold": threshold,
        "far_target": far,
        "strangers": int(len(other)),
        "false_accept_rate": float(np.mean(other <= threshold)),
        "genuine_probes": int(mated.sum()),
        "identified_rate": float(identified.sum() / max(int(mated.sum()), 1)),
    }
