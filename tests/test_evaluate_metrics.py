"""Verification metrics against scikit-learn / SciPy and hand-made cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from facenet.evaluate import evaluate_distances, evaluate_embeddings
from facenet.evaluate import metrics as M


def _random_case(seed=0, n=600, decimals=2):
    """Overlapping same/different distances, rounded so that many ties exist."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.5
    d = np.where(y, rng.normal(0.9, 0.35, n), rng.normal(1.5, 0.35, n)).round(decimals)
    folds = np.arange(n) % 10
    return d, y, folds


# --------------------------------------------------------------------------- vs scikit-learn


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_auc_matches_sklearn_with_ties(seed):
    from sklearn.metrics import roc_auc_score

    d, y, _ = _random_case(seed)
    assert np.unique(d).size < d.size  # the case has ties
    assert M.roc_auc(d, y) == pytest.approx(roc_auc_score(y, -d), abs=1e-12)


def test_roc_curve_contains_every_sklearn_point():
    from sklearn.metrics import roc_curve

    d, y, _ = _random_case(3)
    far, tar, thr = M.roc_curve(d, y)
    fpr, tpr, sk_thr = roc_curve(y, -d, drop_intermediate=False)
    ours = set(zip(np.round(far, 12), np.round(tar, 12), strict=True))
    theirs = set(zip(np.round(fpr, 12), np.round(tpr, 12), strict=True))
    assert theirs <= ours
    # Our thresholds are the (negated) sklearn ones: the unique distances.
    finite = np.isfinite(sk_thr)
    assert set(np.round(-sk_thr[finite], 12)) <= set(np.round(thr, 12))
    assert np.all(np.diff(thr) > 0) and np.all(np.diff(far) >= 0) and np.all(np.diff(tar) >= 0)


def test_eer_matches_brentq_reference():
    from scipy import interpolate
    from scipy.optimize import brentq
    from sklearn.metrics import roc_curve

    d, y, _ = _random_case(4, decimals=3)
    fpr, tpr, _ = roc_curve(y, -d)
    reference = brentq(lambda x: 1.0 - x - interpolate.interp1d(fpr, tpr)(x), 0.0, 1.0)
    eer, thr = M.equal_error_rate(d, y)
    assert eer == pytest.approx(reference, abs=1e-9)
    # At the EER threshold FAR and FRR are close to each other (and to the EER).
    tar, far = M.val_far(d, y, thr)
    assert abs(far - eer) < 0.02 and abs((1 - tar) - eer) < 0.02


@pytest.mark.parametrize("target", [1e-2, 3e-2, 1e-1])
def test_tar_at_far_matches_sklearn(target):
    from sklearn.metrics import roc_curve

    d, y, _ = _random_case(5, n=2000)
    fpr, tpr, _ = roc_curve(y, -d, drop_intermediate=False)
    expected = tpr[fpr <= target].max()
    got = M.tar_at_far(d, y, target)
    assert got["tar"] == pytest.approx(expected)
    assert got["far"] <= target
    assert got["resolvable"]
    # and it is what a direct count at the returned threshold gives
    assert M.val_far(d, y, got["threshold"]) == pytest.approx((got["tar"], got["far"]))


# --------------------------------------------------------------------------- hand-made cases


def test_ties_are_accepted_together():
    # same: 0.2, 0.5; different: 0.5, 0.9. Distances equal to the threshold count as "same".
    d = np.array([0.2, 0.5, 0.5, 0.9])
    y = np.array([1, 1, 0, 0])
    assert M.accuracy(d, y, 0.5) == 0.75  # 0.2 ✓, 0.5 ✓ (same), 0.5 ✗ (different), 0.9 ✓
    assert M.accuracy(d, y, 0.49) == 0.75
    assert M.val_far(d, y, 0.5) == (1.0, 0.5)
    # best threshold: 0.2 and 0.5 both give 0.75; any threshold in [0.2, 0.9) does: midpoint
    assert M.best_threshold(d, y) == (pytest.approx(0.55), 0.75)
    # AUC: 4 same/different comparisons, one tie counting one half
    assert M.roc_auc(d, y) == pytest.approx(3.5 / 4)
    far, tar, thr = M.roc_curve(d, y)
    assert list(thr[1:]) == [0.2, 0.5, 0.9]
    assert list(far) == [0.0, 0.0, 0.5, 1.0] and list(tar) == [0.0, 0.5, 1.0, 1.0]


def test_perfectly_separable():
    y = np.array([1] * 5 + [0] * 5, bool)
    d = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 1.0, 1.1, 1.2, 1.3, 1.4])
    folds = np.arange(10) % 5
    r = evaluate_distances(d, y, folds)
    assert r["accuracy"] == 1.0 and r["accuracy_std"] == 0.0
    assert r["roc_auc"] == 1.0
    assert r["eer"] == 0.0
    assert all(e["tar"] == 1.0 and e["far"] == 0.0 for e in r["tar_at_far"].values())
    # VAL: the threshold is just below the other folds' first different pair, so fold 0's
    # different pair at 1.0 (below the others' 1.1) is a false accept there.
    assert r["val"] == 1.0 and r["fold_far"] == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert r["best_accuracy"] == 1.0 and r["best_threshold"] == pytest.approx(0.75)
    # each fold's threshold is midway between the other folds' largest "same" distance and
    # smallest "different" distance (any threshold in between is equally accurate on them)
    expected = [(max(d[y & (folds != k)]) + min(d[~y & (folds != k)])) / 2 for k in range(5)]
    assert r["fold_threshold"] == expected
    assert r["threshold_mean"] == pytest.approx(np.mean(expected))


def test_all_wrong_case():
    y = np.array([1, 1, 0, 0], bool)
    d = np.array([1.0, 2.0, 0.1, 0.2])
    assert M.roc_auc(d, y) == 0.0
    assert M.equal_error_rate(d, y)[0] == pytest.approx(1.0)
    assert M.best_threshold(d, y)[1] == 0.5  # accept nothing


def test_kfold_accuracy_hand_case():
    d = np.array([0.3, 0.4, 0.5, 0.7, 0.5, 0.59, 0.595, 0.8, 0.55, 0.58, 0.62, 0.9])
    y = np.array([1, 0, 1, 0, 1, 1, 0, 0, 1, 1, 0, 0], bool)
    f = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
    r = M.kfold_accuracy(d, y, f)
    # fold 0 held out: folds 1+2 are all right for t in [0.59, 0.595) -> 0.5925
    # fold 1 held out: folds 0+2 best (7/8) for t in [0.58, 0.62) -> 0.60
    # fold 2 held out: folds 0+1 best (7/8) for t in [0.59, 0.595) -> 0.5925
    assert r["fold_threshold"] == pytest.approx([0.5925, 0.60, 0.5925])
    # fold 0: 0.4 (different) accepted; fold 1: 0.595 (different) accepted; fold 2 all right
    assert r["fold_accuracy"] == [0.75, 0.75, 1.0]
    assert r["accuracy"] == pytest.approx(2.5 / 3)
    assert r["accuracy_std"] == pytest.approx(np.std([0.75, 0.75, 1.0]))
    assert r["threshold_mean"] == pytest.approx(np.mean([0.5925, 0.60, 0.5925]))


def test_threshold_at_far_interpolates():
    # 1000 different pairs at 1, 2, ..., 1000; FAR(t) = floor(t) / 1000.
    neg = np.arange(1, 1001, dtype=float)
    d = np.concatenate([[0.5, 0.7], neg])
    y = np.concatenate([[True, True], np.zeros(1000, bool)])
    assert M.threshold_at_far(d, y, 1e-3) == pytest.approx(1.0)
    assert M.threshold_at_far(d, y, 1.5e-3) == pytest.approx(1.5)
    assert M.threshold_at_far(d, y, 2.25e-3) == pytest.approx(2.25)
    # below one false accept: the largest threshold accepting no different pair
    assert M.threshold_at_far(d, y, 5e-4) == np.nextafter(1.0, 0.0)
    # ties among different pairs: FAR jumps by their number at once
    d2 = np.array([0.2, 1.0, 1.0, 2.0, 3.0])
    y2 = np.array([1, 0, 0, 0, 0], bool)  # F: 0.5 at 1.0, 0.75 at 2.0, 1.0 at 3.0
    assert M.threshold_at_far(d2, y2, 0.625) == pytest.approx(1.5)
    assert M.threshold_at_far(d2, y2, 0.4) == np.nextafter(1.0, 0.0)
    # the chosen threshold never exceeds the target FAR on the pairs it was chosen on
    for target in (1e-4, 5e-4, 1e-3, 1.7e-3, 0.01, 0.5):
        assert M.val_far(d, y, M.threshold_at_far(d, y, target))[1] <= target


def test_kfold_val_constructed_case():
    # Two folds, each: 10 same at 0.1..1.0, 1000 different at 1.001, 1.002, ...
    same = np.linspace(0.1, 1.0, 10)
    diff = 1.0 + np.arange(1, 1001) / 1000
    d = np.concatenate([same, diff, same * 0.9, diff + 0.0005])
    y = np.concatenate([np.ones(10), np.zeros(1000), np.ones(10), np.zeros(1000)]).astype(bool)
    f = np.repeat([0, 1], 1010)
    r = M.kfold_val(d, y, f, far_target=1e-3)
    # fold 0 is tested with fold 1's threshold: FAR 1e-3 on fold 1 = its first different pair
    assert r["fold_val_threshold"][0] == pytest.approx(1.0015)
    assert r["fold_val_threshold"][1] == pytest.approx(1.001)
    assert r["fold_val"] == [1.0, 1.0]
    assert r["fold_far"] == pytest.approx([1e-3, 0.0])
    assert r["val"] == 1.0 and r["val_far"] == pytest.approx(5e-4)


def test_nan_and_forced_wrong_pairs_count_as_wrong():
    y = np.array([1, 1, 0, 0], bool)
    d = np.array([0.1, np.nan, 1.0, np.nan])
    r = evaluate_distances(d, y, threshold=0.5)
    assert r["n_nan"] == 2 and r["n_wrong"] == 2
    assert r["accuracy_at_threshold"] == 0.5
    assert r["best_accuracy"] == 0.5
    # same {0.1, wrong}, different {1.0, wrong}: only 0.1 vs 1.0 is ranked right -> 1/4
    assert M.roc_auc(d, y) == pytest.approx(0.25)
    clean = np.array([0.1, 0.2, 1.0, 1.1])
    r2 = evaluate_distances(clean, y, threshold=0.5, wrong=[False, True, False, True])
    assert r2["n_wrong"] == 2 and r2["accuracy_at_threshold"] == 0.5


def test_single_fold_reports_threshold_free_metrics():
    d, y, _ = _random_case(6)
    r = evaluate_distances(d, y, None, threshold=1.2)
    assert r["n_folds"] == 1
    assert r["accuracy"] is None and r["val"] is None
    assert r["roc_auc"] is not None and r["eer"] is not None
    assert set(r["tar_at_far"]) == {"0.01", "0.001", "0.0001"}
    assert r["accuracy_at_threshold"] == pytest.approx(M.accuracy(d, y, 1.2))
    assert not r["tar_at_far"]["0.001"]["resolvable"]  # 300 different pairs < 1000


def test_kfold_val_is_none_when_a_training_set_has_no_different_pair():
    # fold 0 only matched pairs, fold 1 only mismatched: VAL's threshold for fold 1 would be
    # set on fold 0's (absent) mismatched pairs; it used to raise "FAR needs mismatched pairs"
    r = evaluate_distances([0.1, 0.2, 1.5, 1.7], [1, 1, 0, 0], [0, 0, 1, 1])
    assert r["val"] is None and r["fold_val"] is None
    assert r["accuracy"] is not None and r["roc_auc"] == 1.0


def test_evaluate_embeddings_cosine_and_euclidean_agree_on_unit_vectors():
    rng = np.random.default_rng(7)
    a = rng.normal(size=(200, 16))
    b = a + rng.normal(scale=1.0, size=a.shape) * (np.arange(200) % 2)[:, None]
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    y = np.arange(200) % 2 == 0
    f = np.arange(200) % 10
    e = evaluate_embeddings(a, b, y, f, metric="euclidean")
    c = evaluate_embeddings(a, b, y, f, metric="cosine")
    assert np.allclose(M.pair_distances(a, b, "euclidean"), 2 * M.pair_distances(a, b, "cosine"))
    assert e["accuracy"] == c["accuracy"] and e["roc_auc"] == pytest.approx(c["roc_auc"])
    assert e["threshold_mean"] == pytest.approx(2 * c["threshold_mean"])
    assert e["distance"] == "euclidean" and c["distance"] == "cosine"
    with pytest.raises(ValueError, match="euclidean, cosine"):
        evaluate_embeddings(a, b, y, f, metric="manhattan")


def test_input_validation():
    with pytest.raises(ValueError, match="length"):
        evaluate_distances([0.1, 0.2], [1])
    with pytest.raises(ValueError, match="0/1"):
        evaluate_distances([0.1, 0.2], [1, 2])
    with pytest.raises(ValueError, match="no pairs"):
        evaluate_distances([], [])


def test_speed_on_lfw_sized_input():
    import time

    d, y, f = _random_case(8, n=6000)
    start = time.perf_counter()
    evaluate_distances(d, y, f, threshold=1.1)
    assert time.perf_counter() - start < 2.0
