"""The evaluation pipeline and CLI: embeddings files, the cache, no-face handling, reports, plots.

Most tests use a fake model (no TensorFlow); the end-to-end tests at the bottom use the real
small untrained model from conftest on 20 LFW pairs.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from facenet.cli import main
from facenet.evaluate import embedding as E
from facenet.evaluate.cache import EmbeddingCache
from facenet.evaluate.protocols import PairList, lfw_pairs, read_pair_tsv, write_pair_tsv
from facenet.evaluate.run import evaluate_pairs
from facenet.metadata import ModelInfo
from facenet.types import Face

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SHARED_LFW = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lfw"
REPORT_KEYS = {
    "protocol", "model", "options", "metrics", "failures", "timing", "created", "summary",
}  # fmt: skip
METRIC_KEYS = {
    "n_pairs", "n_same", "n_different", "n_folds", "n_wrong", "accuracy", "accuracy_std",
    "threshold_mean", "threshold_std", "fold_accuracy", "fold_threshold", "val", "val_std",
    "val_far", "fold_val", "fold_far", "fold_val_threshold", "roc_auc", "eer", "eer_threshold",
    "tar_at_far", "best_accuracy", "best_threshold", "accuracy_at_threshold", "distance",
}  # fmt: skip


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 100


def assert_outputs(out: Path) -> dict:
    report = json.loads((out / "report.json").read_text())
    assert REPORT_KEYS <= set(report)
    assert METRIC_KEYS <= set(report["metrics"])
    assert_png(out / "roc.png")
    assert_png(out / "distances.png")
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporaries
    return report


# --------------------------------------------------------------------------- fake model


class FakeModel:
    """Embeds a crop as a fixed random projection of its mean colour; no face in grey images."""

    def __init__(self, size=16, dim=8):
        self.info = ModelInfo(input_size=size, embedding_size=dim)
        self.model_id = "fake0001"
        self.source = "fake"
        self.calls = 0
        self.fail_on_call: int | None = None
        self._proj = np.random.default_rng(0).normal(size=(3 * 4, dim))

    def with_alignment(self, mode, margin=None):
        other = FakeModel(self.info.input_size, self.info.embedding_size)
        other.info = dataclasses.replace(self.info, alignment=mode)
        return other

    def align(self, images, on_missing="raise"):
        out = []
        for rgb in images:
            if rgb.std() < 1.0:
                out.append(None)
            else:
                out.append(np.asarray(Image.fromarray(rgb).resize((self.info.input_size,) * 2)))
        return out

    def crops(self, images, on_missing="raise"):
        """`FaceNet.crops` over `align`: the centred square where `align` finds no face."""
        from facenet.detect.crops import crop_face

        size = self.info.input_size
        return [
            crop_face(rgb, [], None, size) if crop is None else Face((0, 0, 1, 1), 1.0, crop=crop)
            for rgb, crop in zip(images, self.align(images), strict=True)
        ]

    def embed_crops(self, crops, batch_size=32):
        self.calls += 1
        if self.fail_on_call is not None and self.calls >= self.fail_on_call:
            raise KeyboardInterrupt
        c = crops.astype(np.float64) / 255.0
        h = c.shape[1] // 2
        quads = [c[:, :h, :h], c[:, :h, h:], c[:, h:, :h], c[:, h:, h:]]
        feats = np.concatenate([q.mean(axis=(1, 2)) for q in quads], axis=1)
        v = (feats - 0.5) @ self._proj
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def image_dir(tmp_path) -> Path:
    """Six photos of three 'people' (colour patterns), one grey image, one broken file."""
    root = tmp_path / "img"
    rng = np.random.default_rng(1)
    for person in range(3):
        base = rng.integers(0, 255, size=(2, 2, 3))
        for k in range(2):
            noisy = np.clip(base + rng.normal(0, 8, size=base.shape), 0, 255).astype(np.uint8)
            big = np.kron(noisy, np.ones((20, 20, 1))).astype(np.uint8)
            (root / f"p{person}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(big).save(root / f"p{person}" / f"{k}.png")
    Image.new("RGB", (40, 40), (128, 128, 128)).save(root / "grey.png")
    (root / "broken.jpg").write_bytes(b"not an image")
    return root


def _pairs(root: Path) -> PairList:
    a = "p0/0 p1/0 p2/0 p0/0 p1/0 p2/0 grey p0/1".split()
    b = "p0/1 p1/1 p2/1 p1/0 p2/1 p0/1 p1/1 broken".split()
    a = [f"{p}.png" for p in a]
    b = [f"{p}.png" if p != "broken" else "broken.jpg" for p in b]
    labels = [1, 1, 1, 0, 0, 0, 0, 1]
    folds = [0, 1, 2, 0, 1, 2, 0, 1]
    return PairList(a, b, labels, folds, root, name="toy")


def test_pipeline_no_face_failures_and_report(image_dir, tmp_path):
    model = FakeModel()
    pairs = _pairs(image_dir)
    out = tmp_path / "out"
    r = evaluate_pairs(pairs, model=model, out_dir=out, cache_dir=tmp_path / "c", progress=False)
    report = assert_outputs(out)
    assert report["metrics"]["accuracy"] == r["metrics"]["accuracy"]
    f = report["failures"]
    assert f["no_face_images"] == ["grey.png"] and f["n_no_face_pairs"] == 1
    assert list(f["failed_images"]) == ["broken.jpg"] and f["n_failed_pairs"] == 1
    m = report["metrics"]
    assert m["n_pairs"] == 8 and m["n_wrong"] == 1  # the broken image's pair only
    assert report["options"]["threshold_source"] == "default"
    assert report["model"]["model_id"] == "fake0001"
    # --no-face-wrong: the grey image's pair is forced wrong as well
    w = evaluate_pairs(pairs, model=model, no_face_wrong=True, cache_dir=tmp_path / "c",
                       progress=False)  # fmt: skip
    assert w["metrics"]["n_wrong"] == 2
    assert w["timing"]["n_cached"] == 7  # all readable images came from the cache
    assert "no face" in w["summary"]


def test_cache_survives_interruption(image_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(E, "CACHE_CHUNK", 1)
    model = FakeModel()
    model.fail_on_call = 3  # Ctrl-C during the third batch
    paths = ["p0/0.png", "p0/1.png", "p1/0.png", "p1/1.png", "p2/0.png", "p2/1.png"]
    with pytest.raises(KeyboardInterrupt):
        E.embed_images(model, paths, image_dir, batch_size=2, cache_dir=tmp_path, progress=False)
    model.fail_on_call = None
    again = E.embed_images(
        model, paths, image_dir, batch_size=2, cache_dir=tmp_path, progress=False
    )
    assert again.n_cached == 4  # the two finished batches
    fresh = E.embed_images(model, paths, image_dir, batch_size=2, use_cache=False, progress=False)
    np.testing.assert_allclose(again.embeddings, fresh.embeddings, rtol=1e-6)
    chunks = list((tmp_path / "embeddings").glob("*/chunk-*.npz"))
    assert len(chunks) == 1  # compacted after the complete run


def test_cache_chunks(tmp_path):
    cache = EmbeddingCache(tmp_path, "k")
    cache.add(["a", "b"], np.eye(2, dtype=np.float32), np.array([False, True]))
    cache.add(["c"], np.ones((1, 2), np.float32), np.array([False]))
    (cache.folder / "chunk-zzz.npz").write_bytes(b"damaged")  # ignored with a warning
    entries = cache.load()
    assert set(entries) == {"a", "b", "c"} and entries["b"][1] is True
    cache.compact()
    assert len(list(cache.folder.glob("chunk-*.npz"))) == 1
    assert set(cache.load()) == {"a", "b", "c"}


def test_a_cache_folder_that_cannot_be_made_turns_the_cache_off(image_dir, tmp_path, caplog):
    """A --cache-dir under a file used to end the run in a NotADirectoryError traceback at the
    first cache write, after the embedding; the cache only saves time."""
    (tmp_path / "afile").write_text("")
    paths = ["p0/0.png", "p1/0.png"]
    got = E.embed_images(FakeModel(), paths, image_dir, cache_dir=tmp_path / "afile" / "sub",
                         progress=False)  # fmt: skip
    assert np.isfinite(got.embeddings).all() and "embedding cache off" in caplog.text


def test_a_cache_write_that_fails_midway_turns_the_cache_off(image_dir, tmp_path, caplog,
                                                             monkeypatch):  # fmt: skip
    """A full disk or a read-only cache folder at the second chunk (or at the compaction) was
    an OSError traceback that lost the run; now one warning line, the cache off, every image
    embedded, and no temporary file left in the cache."""
    from facenet.evaluate import cache as C

    monkeypatch.setattr(E, "CACHE_CHUNK", 1)
    write = C.atomic_write_bytes
    calls = []

    def full(path, writer):
        calls.append(path)
        if len(calls) >= 2:
            raise OSError(28, "No space left on device")
        write(path, writer)

    monkeypatch.setattr(C, "atomic_write_bytes", full)
    paths = ["p0/0.png", "p0/1.png", "p1/0.png", "p1/1.png"]
    with caplog.at_level("WARNING"):
        got = E.embed_images(FakeModel(), paths, image_dir, batch_size=1, cache_dir=tmp_path,
                             progress=False)  # fmt: skip
    assert np.isfinite(got.embeddings).all() and not got.failed
    warned = [r.getMessage() for r in caplog.records if "cache off" in r.getMessage()]
    assert len(warned) == 1 and "cannot write" in warned[0] and "No space left" in warned[0]
    assert len(calls) == 2  # no write tried once off
    chunks = sorted(p.name for p in (tmp_path / "embeddings").glob("*/*"))
    assert len(chunks) == 1 and chunks[0].startswith("chunk-")  # the first chunk, kept
    monkeypatch.setattr(C, "atomic_write_bytes", write)
    calls.clear()

    def no_unlink(self, missing_ok=False):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "unlink", no_unlink)  # compaction: the old chunks stay
    caplog.clear()
    with caplog.at_level("WARNING"):
        again = E.embed_images(FakeModel(), [*paths, "p2/0.png"], image_dir, batch_size=1,
                               cache_dir=tmp_path, progress=False)  # fmt: skip
    assert again.n_cached == 1 and np.isfinite(again.embeddings).all()
    assert any("cache off" in r.getMessage() for r in caplog.records)


def test_flip_and_alignment_options(image_dir, tmp_path):
    model = FakeModel()
    paths = ["p0/0.png", "p1/0.png"]
    plain = E.embed_images(model, paths, image_dir, cache_dir=tmp_path, progress=False)
    flipped = E.embed_images(model, paths, image_dir, flip=True, cache_dir=tmp_path, progress=False)
    assert flipped.n_cached == 0  # another cache key
    assert np.allclose(np.linalg.norm(flipped.embeddings, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(plain.embeddings, flipped.embeddings)
    other = E.with_alignment(model, "similarity")
    assert other.info.alignment == "similarity" and model.info.alignment == "crop"
    with pytest.raises(ValueError, match="crop, similarity"):
        E.with_alignment(model, "warp")


def test_embeddings_file_cli(tmp_path):
    """--embeddings: any system's vectors through the same code, both npz layouts."""
    rng = np.random.default_rng(2)
    people = {f"p{i}": rng.normal(size=16) for i in range(20)}
    lines, vectors = ["fold\tlabel\tpath_a\tpath_b"], {}
    for i in range(20):
        a, b = f"p{i}/0.jpg", f"p{i}/1.jpg"
        vectors[a] = people[f"p{i}"] + rng.normal(scale=0.3, size=16)
        vectors[b] = people[f"p{i}"] + rng.normal(scale=0.3, size=16)
        other = f"p{(i + 1) % 20}/0.jpg"
        lines += [f"{i % 5}\t1\t{a}\t{b}", f"{i % 5}\t0\t{a}\t{other}"]
    lines.append("0\t1\tp0/0.jpg\tmissing/0.jpg")
    (tmp_path / "list.tsv").write_text("\n".join(lines) + "\n")
    np.savez(tmp_path / "arrays.npz", paths=np.array(list(vectors)),
             embeddings=np.stack(list(vectors.values())))  # fmt: skip
    np.savez(tmp_path / "keyed.npz", **vectors)
    reports = []
    for name in ("arrays", "keyed"):
        out = tmp_path / f"out-{name}"
        result = CliRunner().invoke(main, [
            "evaluate", "pairs", str(tmp_path / "list.tsv"), "--embeddings",
            str(tmp_path / f"{name}.npz"), "--out", str(out), "--threshold", "1.0",
        ])  # fmt: skip
        assert result.exit_code == 1, result.output  # one image is missing: some failed
        assert "accuracy" in result.output and "unusable" in result.output
        assert "1 image failed: missing/0.jpg" in result.output
        reports.append(assert_outputs(out))
    a, b = reports
    assert a["metrics"] == b["metrics"]
    assert a["metrics"]["n_folds"] == 5 and a["metrics"]["n_wrong"] == 1
    assert a["failures"]["failed_images"] == {"missing/0.jpg": "not in the embeddings file"}
    assert a["metrics"]["accuracy"] > 0.9
    assert a["options"]["threshold_source"] == "option"


def test_single_fold_and_single_class_lists(tmp_path):
    rng = np.random.default_rng(3)
    vectors = {f"{i}.jpg": rng.normal(size=8) for i in range(8)}
    np.savez(tmp_path / "e.npz", **vectors)
    one_fold = ["0\t1\t0.jpg\t1.jpg", "0\t0\t2.jpg\t3.jpg", "0\t1\t4.jpg\t5.jpg",
                "0\t0\t6.jpg\t7.jpg"]  # fmt: skip
    only_same = ["0\t1\t0.jpg\t1.jpg", "1\t1\t2.jpg\t3.jpg"]
    for name, lines in (("one", one_fold), ("same", only_same)):
        (tmp_path / f"{name}.tsv").write_text("\n".join(lines) + "\n")
        out = tmp_path / f"out-{name}"
        args = ["evaluate", "pairs", str(tmp_path / f"{name}.tsv"), "--embeddings",
                str(tmp_path / "e.npz"), "--out", str(out)]  # fmt: skip
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        report = assert_outputs(out)
        if name == "one":
            assert report["metrics"]["accuracy"] is None and report["metrics"]["n_folds"] == 1
            assert "best accuracy" in result.output and report["metrics"]["roc_auc"] is not None
            assert "warning: every pair" not in result.stderr
        else:
            assert report["metrics"]["roc_auc"] is None
            assert "warning: every pair is 'same'" in result.stderr


def test_cli_errors(tmp_path):
    runner = CliRunner()
    r = runner.invoke(main, ["evaluate", "pairs", str(tmp_path / "no.tsv"), "--out", str(tmp_path)])
    assert r.exit_code == 2 and "no such pair list" in r.output
    r = runner.invoke(main, ["evaluate", "lfw", "--lfw-dir", str(tmp_path / "x"), "--out", "o"])
    assert r.exit_code == 2 and "LFW folder not found" in r.output
    r = runner.invoke(main, ["evaluate", "lfw", "--distance", "manhattan", "--out", "o"])
    assert r.exit_code == 2
    assert "evaluate" in runner.invoke(main, ["--help"]).output
    (tmp_path / "list.tsv").write_text("0\t1\ta.jpg\tb.jpg\n")
    (tmp_path / "afile").write_text("")
    r = runner.invoke(main, ["evaluate", "pairs", str(tmp_path / "list.tsv"), "--out",
                             str(tmp_path / "afile" / "sub")])  # fmt: skip
    assert r.exit_code == 2 and "is not a folder" in r.output  # before any embedding
    (tmp_path / "empty.npz").write_bytes(b"")  # np.load's EOFError: click would say "Aborted!"
    empty = ["--embeddings", str(tmp_path / "empty.npz"), "--out", str(tmp_path / "o")]
    r = runner.invoke(main, ["evaluate", "pairs", str(tmp_path / "list.tsv"), *empty])
    assert r.exit_code == 2 and "not a readable npz file" in r.output and "Aborted" not in r.output


def test_an_all_zero_embedding_is_a_failed_image(tmp_path):
    """A zero row cannot be normalised: it used to become NaN silently (accuracy 0, exit 0)."""
    rng = np.random.default_rng(4)
    vectors = {f"{i}.jpg": rng.normal(size=8) for i in range(4)}
    (tmp_path / "list.tsv").write_text("0\t1\t0.jpg\t1.jpg\n1\t0\t2.jpg\t3.jpg\n")
    np.savez(tmp_path / "some.npz", **(vectors | {"3.jpg": np.zeros(8)}))
    np.savez(tmp_path / "all.npz", **{k: np.zeros(8) for k in vectors})
    args = ["evaluate", "pairs", str(tmp_path / "list.tsv"), "--embeddings"]
    r = CliRunner().invoke(main, [*args, str(tmp_path / "some.npz"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and "1 image failed: 3.jpg" in r.output
    r = CliRunner().invoke(main, [*args, str(tmp_path / "all.npz"), "--out", str(tmp_path / "p")])
    assert r.exit_code == 2 and "all-zero embedding" in r.output, r.output


UNREADABLE_NPZ = {
    "one array, not an npz": lambda f: np.save(f, np.zeros((2, 4))),  # TypeError before
    "save `paths` as strings": lambda f: np.savez(
        f, paths=np.array(["a.jpg", "b.jpg"], object), embeddings=np.ones((2, 4))
    ),
    "as numbers": lambda f: np.savez(
        f, paths=np.array(["a.jpg", "b.jpg"]), embeddings=np.full((2, 4), "x")
    ),
}


@pytest.mark.parametrize("message", list(UNREADABLE_NPZ))
def test_an_unreadable_embeddings_file_is_one_line(tmp_path, message):
    """np.load's own errors (a .npy, pickled object arrays, strings) used to be tracebacks."""
    with open(tmp_path / "e.npz", "wb") as f:
        UNREADABLE_NPZ[message](f)
    (tmp_path / "list.tsv").write_text("0\t1\ta.jpg\tb.jpg\n")
    args = ["evaluate", "pairs", str(tmp_path / "list.tsv"), "--embeddings",
            str(tmp_path / "e.npz"), "--out", str(tmp_path / "o")]  # fmt: skip
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2 and message in r.output and isinstance(r.exception, SystemExit)


def test_an_image_given_two_embeddings_is_refused(tmp_path):
    """The last row used to win silently; the same vector twice is harmless and accepted."""
    (tmp_path / "list.tsv").write_text("0\t1\ta.jpg\tb.jpg\n0\t0\ta.jpg\tc.jpg\n")
    args = ["evaluate", "pairs", str(tmp_path / "list.tsv"), "--embeddings",
            str(tmp_path / "e.npz"), "--out"]  # fmt: skip
    rows = np.eye(4, 8)
    np.savez(tmp_path / "e.npz", paths=["a.jpg", "b.jpg", "c.jpg", "./a.jpg"], embeddings=rows)
    r = CliRunner().invoke(main, [*args, str(tmp_path / "o")])
    assert r.exit_code == 2 and "a.jpg is given two different embeddings" in r.output, r.output
    rows[3] = rows[0]
    np.savez(tmp_path / "e.npz", paths=["a.jpg", "b.jpg", "c.jpg", "./a.jpg"], embeddings=rows)
    assert CliRunner().invoke(main, [*args, str(tmp_path / "p")]).exit_code == 0


def test_options_that_would_be_ignored_are_refused(tmp_path):
    """--folds with View 2 and --flip with --embeddings used to be ignored silently; a View 1
    list too short for the folds asked for now says how many it made."""
    rng = np.random.default_rng(5)
    vectors = {f"{n}/{n}_{i:04d}.jpg": rng.normal(size=8) for n in "ABCD" for i in (1, 2)}
    np.savez(tmp_path / "e.npz", **vectors)
    (tmp_path / "pairs.txt").write_text("2 1\nA 1 2\nA 1 B 2\nC 1 2\nC 1 D 2\n")
    (tmp_path / "pairsDevTest.txt").write_text("2\nA 1 2\nB 1 2\nA 1 B 2\nC 1 D 2\n")
    args = ["evaluate", "lfw", "--lfw-dir", str(tmp_path), "--embeddings", str(tmp_path / "e.npz")]
    r = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "o"), "--folds", "5"])
    assert r.exit_code == 2 and "--folds is for the View 1 lists" in r.output
    r = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "o"), "--flip"])  # was ignored
    assert r.exit_code == 2 and "--flip and --alignment need a model" in r.output
    r = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "p"), "--view", "dev-test"])
    assert r.exit_code == 0 and "only 2 balanced folds, not 10" in r.stderr, r.output


def test_model_options_with_embeddings_are_refused(tmp_path):
    """--no-face-wrong, --batch-size and --cache-dir change how a model embeds or caches; with
    --embeddings they were ignored silently (exit 0). Now a usage error, as --flip is."""
    rng = np.random.default_rng(5)
    vectors = {f"{n}/{n}_{i:04d}.jpg": rng.normal(size=8) for n in "AB" for i in (1, 2)}
    np.savez(tmp_path / "e.npz", **vectors)
    (tmp_path / "pairs.txt").write_text("1 1\nA 1 2\nA 1 B 2\n")
    args = ["evaluate", "lfw", "--lfw-dir", str(tmp_path), "--embeddings", str(tmp_path / "e.npz"),
            "--out", str(tmp_path / "o")]  # fmt: skip
    for option, extra in (("--no-face-wrong", []), ("--batch-size", ["32"]),
                          ("--cache-dir", [str(tmp_path / "c")])):  # fmt: skip
        r = CliRunner().invoke(main, [*args, option, *extra])
        assert r.exit_code == 2, (option, r.output)
        assert f"Error: {option} needs a model, not --embeddings" in r.output, r.output
        assert "Traceback" not in r.output and not (tmp_path / "o").exists()
    r = CliRunner().invoke(main, [*args, "--no-face-wrong", "--cache-dir", str(tmp_path / "c")])
    assert "--no-face-wrong and --cache-dir need a model, not --embeddings" in r.output
    assert CliRunner().invoke(main, args).exit_code == 0


def test_no_cache_with_embeddings_and_raw_without_are_refused(tmp_path):
    """--no-cache with --embeddings (no model, no cache) and --raw without --embeddings (a
    model's vectors are always normalised) were ignored silently, exit 0. Now usage errors."""
    rng = np.random.default_rng(5)
    vectors = {f"{n}/{n}_{i:04d}.jpg": rng.normal(size=8) for n in "AB" for i in (1, 2)}
    np.savez(tmp_path / "e.npz", **vectors)
    (tmp_path / "pairs.txt").write_text("1 1\nA 1 2\nA 1 B 2\n")
    args = ["evaluate", "lfw", "--lfw-dir", str(tmp_path), "--out", str(tmp_path / "o")]
    embeddings = ["--embeddings", str(tmp_path / "e.npz")]
    for extra, message in (([*embeddings, "--no-cache"], "--no-cache needs a model, not "
                            "--embeddings"), (["--raw"], "--raw needs --embeddings")):  # fmt: skip
        r = CliRunner().invoke(main, [*args, *extra])
        assert r.exit_code == 2 and f"Error: {message}" in r.output, (extra, r.output)
        assert r.output.count("Error") == 1  # one error line (after click's usage hint)
        assert "Traceback" not in r.output and not (tmp_path / "o").exists()
    assert CliRunner().invoke(main, [*args, *embeddings, "--raw"]).exit_code == 0


def test_an_absurd_batch_size_is_a_usage_error(image_dir, tmp_path):
    """`evaluate --batch-size 10**9` was taken (every image decoded and held at once). Now
    1..1024 as in `facenet embed`, else click's usage error, exit 2, before any work; the API
    refuses a batch size below 1 in one line (a FaceNetError, as everywhere)."""
    from facenet.errors import FaceNetError

    (tmp_path / "list.tsv").write_text("0\t1\ta.jpg\tb.jpg\n")
    for size in ("0", "-1", str(10**9)):
        for args in (("lfw", "--lfw-dir", str(tmp_path)), ("pairs", str(tmp_path / "list.tsv"))):
            r = CliRunner().invoke(main, ["evaluate", *args, "--out", str(tmp_path / "o"),
                                          "--batch-size", size])  # fmt: skip
            assert r.exit_code == 2 and "Traceback" not in r.output, r.output
            assert f"'--batch-size': {size} is not in the range 1<=x<=1024" in r.output
    assert not (tmp_path / "o").exists()
    model = FakeModel()
    for size in (0, 1025):  # 1..1024, as on the command line, before any image is embedded
        with pytest.raises(FaceNetError, match=rf"^batch_size must be 1\.\.1024; got {size}$"):
            evaluate_pairs(_pairs(image_dir), model=model, batch_size=size, progress=False)
    assert model.calls == 0


def test_embed_images_takes_batch_sizes_1_to_1024_only(image_dir, tmp_path):
    """`embed_images` (the pipeline's entry below evaluate_pairs) checked only >= 1: 10**9
    photos per batch were taken. Now 1..1024, one line, before any image is embedded."""
    from facenet.errors import FaceNetError

    model = FakeModel()
    for size in (0, 1025, 10**9):
        with pytest.raises(FaceNetError, match=rf"^batch_size must be 1\.\.1024; got {size}$"):
            E.embed_images(model, ["p0/0.png"], image_dir, batch_size=size, cache_dir=tmp_path,
                           progress=False)  # fmt: skip
    assert model.calls == 0 and not (tmp_path / "embeddings").exists()


def test_an_unwritable_output_is_one_line_and_keeps_the_old_ones(tmp_path, monkeypatch):
    """A full disk (or --out made read-only mid-run) while the report and plots were written
    was an OSError traceback from plot_roc, with a new roc.png beside an old report.json. Now
    one line naming the file, exit 2, and --out as it was: the previous run's outputs
    untouched, none of this run's, no temporary file."""
    import errno

    from facenet import outputs

    rng = np.random.default_rng(5)
    vectors = {f"{n}/{n}_{i:04d}.jpg": rng.normal(size=8) for n in "AB" for i in (1, 2)}
    np.savez(tmp_path / "e.npz", **vectors)
    (tmp_path / "pairs.txt").write_text("1 1\nA 1 2\nA 1 B 2\n")
    out = tmp_path / "o"
    args = ["evaluate", "lfw", "--lfw-dir", str(tmp_path), "--embeddings", str(tmp_path / "e.npz"),
            "--out", str(out)]  # fmt: skip
    assert CliRunner().invoke(main, args).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(before) == {"report.json", "roc.png", "distances.png"}
    write = outputs.write_temporary

    def full(path, writer):
        if path.name == "distances.png":  # the second file: roc.png's is written by then
            raise OSError(errno.ENOSPC, "No space left on device")
        return write(path, writer)

    monkeypatch.setattr(outputs, "write_temporary", full)
    r = CliRunner().invoke(main, [*args, "--threshold", "1.5"])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert r.output == f"Error: cannot write {out / 'distances.png'} (No space left on device)\n"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no temporary either


def test_a_folder_where_a_plot_goes_writes_none_of_the_outputs(tmp_path):
    """A folder named roc.png in --out failed at its rename, after report.json had been moved
    into place: a new report beside the old distances.png, not "all or none". Now refused
    before anything moves: one line, exit 2, --out as it was."""
    rng = np.random.default_rng(5)
    vectors = {f"{n}/{n}_{i:04d}.jpg": rng.normal(size=8) for n in "AB" for i in (1, 2)}
    np.savez(tmp_path / "e.npz", **vectors)
    (tmp_path / "pairs.txt").write_text("1 1\nA 1 2\nA 1 B 2\n")
    out = tmp_path / "o"
    (out / "roc.png").mkdir(parents=True)
    (out / "distances.png").write_bytes(b"previous")
    args = ["evaluate", "lfw", "--lfw-dir", str(tmp_path), "--embeddings", str(tmp_path / "e.npz"),
            "--out", str(out)]  # fmt: skip
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert r.output == f"Error: cannot write {out / 'roc.png'} (Is a directory)\n"
    assert sorted(p.name for p in out.iterdir()) == ["distances.png", "roc.png"]  # no report
    assert (out / "distances.png").read_bytes() == b"previous"


def test_an_empty_out_is_refused_not_the_current_folder(tmp_path, monkeypatch):
    """`--out "$OUT"` with OUT unset: "" is Path("."), so the report and plots went into the
    current folder, replacing a report.json there. Now one line, exit 2, nothing written."""
    rng = np.random.default_rng(5)
    vectors = {f"{n}/{n}_{i:04d}.jpg": rng.normal(size=8) for n in "AB" for i in (1, 2)}
    np.savez(tmp_path / "e.npz", **vectors)
    (tmp_path / "pairs.txt").write_text("1 1\nA 1 2\nA 1 B 2\n")
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    args = ["evaluate", "lfw", "--lfw-dir", str(tmp_path), "--embeddings", str(tmp_path / "e.npz"),
            "--out", ""]  # fmt: skip
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2, r.output
    assert r.output == "Error: the output path is empty (an unset shell variable?)\n"
    assert list(here.iterdir()) == []


def test_a_run_that_fails_leaves_no_out_folder_behind(tmp_path):
    """--out is made at the start (a bad one fails before the embedding), but a run that then
    failed (no such model, an unusable embeddings file) left that new, empty folder, and its
    new parents, behind. Now they go again; an --out that was there stays."""
    (tmp_path / "pairs.txt").write_text("1 1\nA 1 2\nA 1 B 2\n")
    np.savez(tmp_path / "other.npz", **{"Z/Z_0001.jpg": np.ones(8)})
    lfw = ["evaluate", "lfw", "--lfw-dir", str(tmp_path)]
    for bad in (["--model", str(tmp_path / "absent.onnx")],
                ["--embeddings", str(tmp_path / "other.npz")]):  # fmt: skip
        r = CliRunner().invoke(main, [*lfw, *bad, "--out", str(tmp_path / "new" / "deep" / "o")])
        assert r.exit_code == 2 and "\nError: " in "\n" + r.output, r.output
        assert "Traceback" not in r.output and not (tmp_path / "new").exists()
        (tmp_path / "kept").mkdir(exist_ok=True)
        r = CliRunner().invoke(main, [*lfw, *bad, "--out", str(tmp_path / "kept")])
        assert r.exit_code == 2 and (tmp_path / "kept").is_dir(), r.output


def test_a_pair_list_saved_with_a_byte_order_mark_reads(tmp_path):
    """Windows editors start UTF-8 files with a BOM; it is not part of the first field."""
    from facenet.evaluate.protocols import read_pair_tsv

    (tmp_path / "bom.tsv").write_text("fold\tlabel\tpath_a\tpath_b\n0\t1\ta.jpg\tb.jpg\n",
                                      encoding="utf-8-sig")  # fmt: skip
    (tmp_path / "bom1.tsv").write_text("0\t1\ta.jpg\tb.jpg\n", encoding="utf-8-sig")
    for name in ("bom.tsv", "bom1.tsv"):
        pairs = read_pair_tsv(tmp_path / name)
        assert len(pairs) == 1 and pairs.folds.tolist() == [0]


# --------------------------------------------------------------------------- real model


@pytest.fixture(scope="module")
def lfw_root() -> Path:
    if not (SHARED_LFW / "pairs.txt").is_file():
        pytest.skip(f"LFW data not available at {SHARED_LFW}")
    return SHARED_LFW


def test_end_to_end_lfw_and_tsv_agree(lfw_root, small_model_file, tmp_path):
    runner = CliRunner()
    out_lfw, out_tsv = tmp_path / "lfw", tmp_path / "tsv"
    cache = tmp_path / "cache"
    common = ["--model", str(small_model_file), "--cache-dir", str(cache), "--no-progress"]
    r1 = runner.invoke(main, ["evaluate", "lfw", "--lfw-dir", str(lfw_root), "--limit", "20",
                              "--out", str(out_lfw), *common])  # fmt: skip
    assert r1.exit_code == 0, r1.output
    assert "accuracy" in r1.output and "ROC AUC" in r1.output
    rep1 = assert_outputs(out_lfw)
    m1 = rep1["metrics"]
    assert m1["n_pairs"] == 20 and m1["n_folds"] == 10 and m1["n_same"] == 10
    assert len(m1["fold_accuracy"]) == 10 and len(m1["fold_threshold"]) == 10
    assert rep1["timing"]["n_images"] == 40 and rep1["timing"]["n_cached"] == 0
    assert rep1["model"]["info"]["input_size"] == 64
    assert rep1["protocol"]["name"] == "lfw-view2"

    from facenet.evaluate.protocols import balanced_subset

    subset = balanced_subset(lfw_pairs(lfw_root, "2"), 20)
    write_pair_tsv(subset, tmp_path / "pairs.tsv")
    assert len(read_pair_tsv(tmp_path / "pairs.tsv")) == 20
    r2 = runner.invoke(main, ["evaluate", "pairs", str(tmp_path / "pairs.tsv"), "--root",
                              str(subset.root), "--out", str(out_tsv), *common])  # fmt: skip
    assert r2.exit_code == 0, r2.output
    rep2 = assert_outputs(out_tsv)
    assert rep2["timing"]["n_cached"] == 40  # same model and options: all from the cache
    for key in ("accuracy", "fold_accuracy", "fold_threshold", "roc_auc", "eer", "val"):
        assert rep2["metrics"][key] == m1[key], key
