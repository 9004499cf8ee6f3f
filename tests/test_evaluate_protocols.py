"""Pair protocols: the LFW pairs files and the generic TSV pair list."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facenet.evaluate.protocols import (
    PairListError,
    balanced_subset,
    lfw_pairs,
    read_lfw_pairs,
    read_pair_tsv,
    stratified_folds,
    write_pair_tsv,
)

SHARED_LFW = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lfw"


@pytest.fixture(scope="module")
def lfw_root() -> Path:
    if not (SHARED_LFW / "pairs.txt").is_file():
        pytest.skip(f"LFW pairs not available at {SHARED_LFW}")
    return SHARED_LFW


def test_lfw_view2(lfw_root):
    pairs = lfw_pairs(lfw_root, "2")
    assert len(pairs) == 6000
    assert pairs.n_folds == 10
    assert int(pairs.labels.sum()) == 3000
    assert np.all(np.bincount(pairs.folds) == 600)
    for k in range(10):  # 300 matched then 300 mismatched per fold
        fold = pairs.labels[pairs.folds == k]
        assert fold[:300].all() and not fold[300:].any()
    assert pairs.root == lfw_root / "lfw-deepfunneled"
    assert pairs.paths_a[0] == "Abel_Pacheco/Abel_Pacheco_0001.jpg"
    assert pairs.paths_b[0] == "Abel_Pacheco/Abel_Pacheco_0004.jpg"
    assert pairs.missing_files() == []  # every referenced file exists
    assert len(pairs.images()) == len(set(pairs.paths_a) | set(pairs.paths_b))


@pytest.mark.parametrize(("view", "n"), [("dev-train", 2200), ("dev-test", 1000)])
def test_lfw_view1(lfw_root, view, n):
    pairs = lfw_pairs(lfw_root, view)
    assert len(pairs) == n and int(pairs.labels.sum()) == n // 2
    assert pairs.n_folds == 10
    for k in range(10):  # balanced folds
        assert int(pairs.labels[pairs.folds == k].sum()) == n // 20
        assert int((~pairs.labels[pairs.folds == k]).sum()) == n // 20
    one = lfw_pairs(lfw_root, view, n_folds=1)
    assert one.n_folds == 1
    assert pairs.missing_files() == []


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_lfw_parser_small_and_errors(tmp_path):
    good = "2\t1\nA\t1\t2\nA\t1\tC\t2\nB\t3\t4\nB\t2\tD\t5\n"
    p = read_lfw_pairs(_write(tmp_path, "pairs.txt", good), tmp_path)
    assert p.paths_a == ["A/A_0001.jpg", "A/A_0001.jpg", "B/B_0003.jpg", "B/B_0002.jpg"]
    assert p.paths_b == ["A/A_0002.jpg", "C/C_0002.jpg", "B/B_0004.jpg", "D/D_0005.jpg"]
    assert p.labels.tolist() == [True, False, True, False]
    assert p.folds.tolist() == [0, 0, 1, 1]
    view1 = read_lfw_pairs(_write(tmp_path, "dev.txt", "1\nA 1 2\nA 1 C 2\n"), tmp_path)
    assert view1.labels.tolist() == [True, False] and view1.n_folds == 1
    with pytest.raises(PairListError, match="announces 4 pairs"):
        read_lfw_pairs(_write(tmp_path, "short.txt", "2 1\nA 1 2\n"), tmp_path)
    with pytest.raises(PairListError, match=r"short2.txt:3: expected a mismatched"):
        read_lfw_pairs(_write(tmp_path, "short2.txt", "1 1\nA 1 2\nB 1 2\n"), tmp_path)
    with pytest.raises(PairListError, match="integers"):
        read_lfw_pairs(_write(tmp_path, "bad.txt", "1 1\nA 1 x\nA 1 B 2\n"), tmp_path)
    with pytest.raises(PairListError, match="no such pairs file"):
        read_lfw_pairs(tmp_path / "absent.txt", tmp_path)
    with pytest.raises(PairListError, match="not found"):
        lfw_pairs(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="dev-train"):
        lfw_pairs(tmp_path, "3")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0 0\n", "at least one fold and one pair"),  # used to reach "no pairs" ValueError
        ("0\n", "at least one fold and one pair"),
        ("-1 -1\nA 1 2\nA 1 B 2\n", "at least one fold and one pair"),
        ("1 1\nA 1 -2\nA 1 B 2\n", "pairs.txt:2: image numbers start at 1"),
        ("1 1\nA 1 2\nA 1 B 0\n", "pairs.txt:3: image numbers start at 1"),
        ("1 1\nA 1 2\nA 1 B\x00 2\n", "pairs.txt:3: image path holds a NUL byte"),
    ],
)
def test_lfw_header_and_image_numbers_must_be_positive(tmp_path, text, message):
    with pytest.raises(PairListError, match=message):
        read_lfw_pairs(_write(tmp_path, "pairs.txt", text), tmp_path)


def test_stratified_folds():
    labels = np.array([True] * 25 + [False] * 25)
    folds = stratified_folds(labels, 10)
    assert folds[:25].tolist() == sorted(folds[:25].tolist())
    assert np.bincount(folds[:25]).tolist() == [3, 2, 3, 2, 3, 2, 3, 2, 3, 2]
    assert np.array_equal(folds[:25], folds[25:])


def test_tsv_round_trip_and_format(tmp_path):
    text = (
        "# a comment\n"
        "fold\tlabel\tpath_a\tpath_b\n"
        "3\t1\tx/a.jpg\tx/b.jpg\n"
        "\n"
        "7\t0\tx/a.jpg\ty/c.png\n"
    )
    p = read_pair_tsv(_write(tmp_path, "list.tsv", text), root=tmp_path / "img")
    assert p.paths_a == ["x/a.jpg", "x/a.jpg"] and p.paths_b == ["x/b.jpg", "y/c.png"]
    assert p.labels.tolist() == [True, False] and p.folds.tolist() == [3, 7]
    assert p.root == tmp_path / "img" and p.images() == ["x/a.jpg", "x/b.jpg", "y/c.png"]
    assert read_pair_tsv(tmp_path / "list.tsv").root == tmp_path  # default: the list's folder
    write_pair_tsv(p, tmp_path / "again.tsv")
    q = read_pair_tsv(tmp_path / "again.tsv", root=tmp_path / "img")
    assert (q.paths_a, q.paths_b, q.labels.tolist(), q.folds.tolist()) == (
        p.paths_a, p.paths_b, p.labels.tolist(), p.folds.tolist(),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("0\t1\ta.jpg", "expected 4 tab-separated fields"),
        ("x\t1\ta.jpg\tb.jpg", "fold must be an integer"),
        ("99999999999999999999\t1\ta.jpg\tb.jpg", "fold must be an integer"),  # OverflowError
        ("0\tyes\ta.jpg\tb.jpg", "label must be 1"),
        ("0\t1\t\tb.jpg", "empty image path"),
        ("0\t1\ta.jpg\tb\x00.jpg", "image path holds a NUL byte"),  # was a traceback in open()
    ],
)
def test_tsv_errors(tmp_path, line, message):
    path = _write(tmp_path, "bad.tsv", "0\t1\tok.jpg\tok2.jpg\n" + line + "\n")
    with pytest.raises(PairListError, match=rf"bad.tsv:2: {message}"):
        read_pair_tsv(path)


def test_tsv_empty(tmp_path):
    with pytest.raises(PairListError, match="no pairs"):
        read_pair_tsv(_write(tmp_path, "empty.tsv", "# nothing\n"))


def test_balanced_subset(lfw_root):
    pairs = lfw_pairs(lfw_root, "2")
    sub = balanced_subset(pairs, 20)
    assert len(sub) == 20 and sub.n_folds == 10 and int(sub.labels.sum()) == 10
    assert sub.paths_a[0] == pairs.paths_a[0]
    assert balanced_subset(pairs, 10_000) is pairs
