"""Triplet mining against a brute-force NumPy reference that loops over every triplet."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from facenet.train import select_triplets, triplet_loss, triplet_loss_with_stats  # noqa: E402

MARGIN = 0.2


def _unit(rng, n, d=8):
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _dist(e):
    e = e.astype(np.float64)
    return ((e[:, None, :] - e[None, :, :]) ** 2).sum(-1)


def reference(labels, emb, mining, margin=MARGIN):
    """(loss, selection) by explicit loops; selection as in `select_triplets`."""
    d = _dist(emb)
    n = len(labels)
    pos = [(a, p) for a in range(n) for p in range(n) if a != p and labels[a] == labels[p]]
    negs = {a: [k for k in range(n) if labels[k] != labels[a]] for a in range(n)}
    if mining == "batch_all":
        losses, active = [], set()
        for a, p in pos:
            for k in negs[a]:
                value = d[a, p] - d[a, k] + margin
                if value > 1e-16:
                    losses.append(value)
                    active.add((a, p, k))
        return (sum(losses) / len(losses) if losses else 0.0), active
    if mining == "batch_hard":
        losses, chosen = [], {}
        for a in range(n):
            ps = [p for (x, p) in pos if x == a]
            if not ps or not negs[a]:
                continue
            hp = max(ps, key=lambda p: d[a, p])
            hn = min(negs[a], key=lambda k: d[a, k])
            chosen[a] = (hp, hn)
            losses.append(max(d[a, hp] - d[a, hn] + margin, 0.0))
        return (sum(losses) / len(losses) if losses else 0.0), chosen
    losses, chosen = [], {}
    for a, p in pos:
        if not negs[a]:
            continue
        semi = [k for k in negs[a] if d[a, k] > d[a, p]]
        k = min(semi, key=lambda k: d[a, k]) if semi else max(negs[a], key=lambda k: d[a, k])
        chosen[(a, p)] = k
        losses.append(max(d[a, p] - d[a, k] + margin, 0.0))
    return (sum(losses) / len(losses) if losses else 0.0), chosen


def _selection(sel, mining):
    if mining == "batch_all":
        return {tuple(int(i) for i in t) for t in np.argwhere(sel["active"].numpy())}
    if mining == "batch_hard":
        p, k = sel["positive"].numpy(), sel["negative"].numpy()
        return {a: (int(p[a]), int(k[a])) for a in range(len(p)) if p[a] >= 0}
    k = sel["negative"].numpy()
    return {(int(a), int(p)): int(k[a, p]) for a, p in np.argwhere(k >= 0)}


CASES = {
    "mixed": lambda rng: rng.integers(0, 5, size=24),
    "pk": lambda rng: np.repeat(rng.permutation(10)[:6], 4),
    "singletons_and_groups": lambda rng: np.array([0, 0, 0, 1, 1, 2, 3, 4, 5, 6]),
    "no_positive": lambda rng: np.arange(12),
    "no_negative": lambda rng: np.zeros(8, int),
}


@pytest.mark.parametrize("mining", ["semi_hard", "batch_hard", "batch_all"])
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mining_matches_bruteforce(mining, case, seed):
    rng = np.random.default_rng(seed)
    labels = CASES[case](rng)
    emb = _unit(rng, len(labels))
    want_loss, want_sel = reference(labels, emb, mining)
    got = float(triplet_loss(labels, emb, MARGIN, mining))
    assert got == pytest.approx(want_loss, abs=1e-5)
    sel = select_triplets(labels, emb, MARGIN, mining)
    assert _selection(sel, mining) == want_sel
    if case in ("no_positive", "no_negative"):
        assert got == 0.0


@pytest.mark.parametrize("mining", ["semi_hard", "batch_hard", "batch_all"])
@pytest.mark.parametrize("labels", [np.arange(6), np.zeros(6, int), np.array([0, 0, 1, 1, 2, 2])])
def test_gradients_are_finite(mining, labels):
    emb = tf.Variable(_unit(np.random.default_rng(3), len(labels)))
    with tf.GradientTape() as tape:
        unit = tf.math.l2_normalize(emb, axis=1)
        loss = triplet_loss(labels, unit, MARGIN, mining)
    grad = tape.gradient(loss, emb)
    assert np.all(np.isfinite(grad.numpy()))


def test_stats():
    rng = np.random.default_rng(5)
    labels = np.repeat(np.arange(4), 3)
    emb = _unit(rng, len(labels))
    d = _dist(emb)
    same = labels[:, None] == labels[None, :]
    off = ~np.eye(len(labels), dtype=bool)
    _, stats = triplet_loss_with_stats(labels, emb, MARGIN, "batch_all")
    assert float(stats["pos_dist"]) == pytest.approx(d[same & off].mean(), abs=1e-5)
    assert float(stats["neg_dist"]) == pytest.approx(d[~same].mean(), abs=1e-5)
    _, active = reference(labels, emb, "batch_all")
    valid = sum(int(same[a, p] and a != p and labels[k] != labels[a])
                for a in range(12) for p in range(12) for k in range(12))  # fmt: skip
    assert float(stats["active_fraction"]) == pytest.approx(len(active) / valid)
    assert float(stats["num_triplets"]) == valid


def test_unknown_mining():
    with pytest.raises(ValueError, match="semi_hard"):
        triplet_loss([0, 0], np.eye(2, dtype=np.float32), mining="hardest")


def test_works_in_tf_function():
    fn = tf.function(lambda y, e: triplet_loss(y, e, 0.2, "semi_hard"))
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 2)
    emb = _unit(rng, 8)
    assert float(fn(labels, emb)) == pytest.approx(reference(labels, emb, "semi_hard")[0], abs=1e-5)
