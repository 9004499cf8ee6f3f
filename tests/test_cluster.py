"""Clustering of embeddings, pairwise scores, and the `facenet cluster` output folder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facenet.clustering import chinese_whispers, cluster, pairwise_scores
from facenet.clustering.photos import cluster_photos
from facenet.types import Face

from .test_gallery import FakeModel, photo, save


def blobs(people=6, per_person=10, dim=64, spread=0.25, outliers=0, seed=0):
    """Unit vectors around `people` random centres (same-person distance ~0.1-0.2), plus
    `outliers` lone vectors; labels of outliers are unique ids >= 1000."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((people, dim))
    x, y = [], []
    for p, c in enumerate(centres):
        c = c / np.linalg.norm(c)
        for _ in range(per_person):
            v = c + spread * rng.standard_normal(dim) / np.sqrt(dim)
            x.append(v / np.linalg.norm(v))
            y.append(p)
    for i in range(outliers):
        v = rng.standard_normal(dim)
        x.append(v / np.linalg.norm(v))
        y.append(1000 + i)
    order = rng.permutation(len(x))
    return np.asarray(x, np.float32)[order], np.asarray(y)[order]


@pytest.mark.parametrize("method", ["agglomerative", "dbscan", "chinese_whispers"])
def test_methods_recover_well_separated_people(method):
    x, y = blobs(outliers=3)
    labels = cluster(x, threshold=0.8, method=method)
    scores = pairwise_scores(y, labels)
    assert scores.precision == 1.0 and scores.recall == 1.0 and scores.f1 == 1.0
    assert scores.clusters == 9 and scores.people == 9  # 6 people + 3 singletons
    sizes = np.bincount(labels[labels >= 0])
    assert list(sizes) == sorted(sizes, reverse=True)  # numbered largest first


@pytest.mark.parametrize("method", ["agglomerative", "dbscan", "chinese_whispers"])
def test_min_size_turns_small_clusters_into_noise(method):
    x, y = blobs(people=3, per_person=5, outliers=4)
    labels = cluster(x, threshold=0.8, method=method, min_size=3)
    assert (labels[y >= 1000] == -1).all()
    assert set(labels[y < 1000]) == {0, 1, 2}
    scores = pairwise_scores(y, labels)
    assert scores.noise == 4 and scores.clusters == 3 and scores.f1 == 1.0


def test_chinese_whispers_is_seeded_and_merges_chains():
    x, y = blobs(people=5, per_person=8, seed=3)
    a = chinese_whispers(x, 0.8, seed=1)
    b = chinese_whispers(x, 0.8, seed=1)
    np.testing.assert_array_equal(a, b)
    assert pairwise_scores(y, a).f1 == 1.0
    # edges are weighted by similarity: even a complete graph keeps the people apart
    assert pairwise_scores(y, cluster(x, threshold=3.9, method="chinese_whispers")).f1 == 1.0
    # a threshold below every distance leaves singletons
    assert len(set(cluster(x, threshold=1e-4, method="chinese_whispers"))) == len(x)


def test_threshold_controls_merging_of_close_people():
    rng = np.random.default_rng(0)
    base = rng.standard_normal(32)
    twin = base + 0.5 * rng.standard_normal(32)
    x = np.stack([v / np.linalg.norm(v) for v in (base, base + 0.01, twin, twin + 0.01)])
    gap = float(((x[0] - x[2]) ** 2).sum())
    assert len(set(cluster(x, threshold=gap / 2))) == 2
    assert len(set(cluster(x, threshold=gap * 1.5))) == 1


@pytest.mark.parametrize("seed", range(6))
def test_numpy_methods_equal_scikit_learn(seed):
    """The light install's NumPy agglomerative and DBSCAN give scikit-learn's partitions."""
    sklearn_cluster = pytest.importorskip("sklearn.cluster")
    from facenet.clustering import _squared_distances, average_linkage, dbscan

    rng = np.random.default_rng(seed)
    k, n = int(rng.integers(2, 20)), int(rng.integers(20, 200))
    x = rng.normal(size=(k, 32))[rng.integers(0, k, n)] + rng.normal(scale=0.5, size=(n, 32))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    threshold, min_samples = float(rng.uniform(0.4, 1.4)), int(rng.integers(1, 5))
    ours = cluster(x, threshold, "agglomerative")
    reference = sklearn_cluster.AgglomerativeClustering(
        n_clusters=None, metric="precomputed", linkage="average", distance_threshold=threshold
    ).fit_predict(_squared_distances(x))
    assert same_partition(ours, reference)
    assert same_partition(average_linkage(_squared_distances(x), threshold), reference)
    reference = sklearn_cluster.DBSCAN(
        eps=np.sqrt(threshold) * (1 + 1e-6), min_samples=min_samples
    ).fit_predict(x)
    assert same_partition(dbscan(x, threshold, min_samples), reference)


def same_partition(a, b) -> bool:
    """Equal up to renaming the labels (noise, -1, must be the same faces)."""
    a, b = np.asarray(a), np.asarray(b)
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    noise = ((a == -1) == (b == -1)).all()
    return bool(noise) and len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_pairwise_scores_by_hand():
    true = ["a", "a", "a", "b", "b", "c"]
    pred = [0, 0, 1, 1, 1, -1]
    s = pairwise_scores(true, pred)
    # predicted pairs: (0,1) right; (2,3) wrong, (2,4) wrong, (3,4) right -> P = 2/4
    # true pairs: a: 3, b: 1 -> recall 2/4
    assert (s.precision, s.recall) == (0.5, 0.5) and s.f1 == 0.5
    assert (s.clusters, s.people, s.noise) == (2, 3, 1)
    perfect = pairwise_scores([1, 1, 2], [5, 5, 7])
    assert (perfect.precision, perfect.recall, perfect.f1) == (1.0, 1.0, 1.0)
    singletons = pairwise_scores([1, 2, 3], [-1, -1, -1])
    assert singletons.precision == 1.0 and singletons.recall == 1.0 and singletons.clusters == 0
    with pytest.raises(ValueError, match="shape"):
        pairwise_scores([1, 2], [1])


def test_edge_cases_and_bad_options():
    assert cluster(np.zeros((0, 8))).shape == (0,)
    assert list(cluster(np.ones((1, 8)))) == [0]
    with pytest.raises(ValueError, match="method must be one of"):
        cluster(np.ones((2, 8)), method="kmeans")
    with pytest.raises(ValueError, match="threshold"):
        cluster(np.ones((2, 8)), threshold=5)
    with pytest.raises(ValueError, match="NaN"):
        cluster(np.full((2, 8), np.nan))


def test_vectors_without_a_direction_are_refused():
    """All-zero rows used to be kept, each at distance 2 from everything: identical inputs in
    different clusters; huge or tiny rows over/underflowed to the same. A NaN min_size passed
    the `< 1` check and made everything noise."""
    with pytest.raises(ValueError, match="all zeros"):
        cluster(np.zeros((3, 8)), threshold=0.5)
    with pytest.raises(ValueError, match="at least one dimension"):
        cluster(np.zeros((3, 0)), threshold=0.5)
    with pytest.raises(ValueError, match="n x d array of numbers"):  # numpy's own message before
        cluster([[1.0, 0.0], [1.0, 0.0, 0.0]], threshold=0.5)
    face = Face((0, 0, 1, 1), 1.0, embedding=np.ones(8, np.float32))
    with pytest.raises(ValueError, match="every Face"):  # an AttributeError before
        cluster([face, np.ones(8)], threshold=0.5)
    with pytest.raises(ValueError, match="min_size"):
        cluster(np.ones((3, 8)), threshold=0.5, min_size=float("nan"))
    for scale in (1e-3, 1e-25, 1e25):  # not unit: normalised without under/overflow
        assert list(cluster(np.ones((3, 8)) * scale, threshold=0.5)) == [0, 0, 0]


def test_cluster_photos_writes_folders_json_and_contact_sheet(tmp_path):
    photos = []
    for person in (1, 2):
        for variant in range(3):
            photos.append(
                save(tmp_path / "in" / f"p{person}_{variant}.png", photo((person, variant, 30)))
            )
    photos.append(save(tmp_path / "in" / "group.png", photo((1, 9, 20), (3, 0, 20))))
    photos.append(save(tmp_path / "in" / "blank.png", np.zeros((20, 20, 3), np.uint8)))
    out = tmp_path / "out"
    report = cluster_photos(FakeModel(), photos, out, method="chinese_whispers")
    assert (report.faces, report.clusters, report.noise) == (8, 3, 0)
    assert report.no_face == [str(photos[-1])]
    summary = json.loads((out / "clusters.json").read_text())
    assert [c["size"] for c in summary["clusters"]] == [4, 3, 1]
    biggest = {f["photo"].split("/")[-1] for f in summary["clusters"][0]["faces"]}
    assert biggest == {"p1_0.png", "p1_1.png", "p1_2.png", "group.png"}
    for c in summary["clusters"]:
        for face in c["faces"]:
            assert (out / face["crop"]).is_file()
            assert face["crop"].startswith(f"cluster_{c['label']:03d}/")
    sheet = (out / "index.html").read_text()
    assert 'src="cluster_000/' in sheet and str(tmp_path / "out") not in sheet
    with pytest.raises(Exception, match="not empty"):
        cluster_photos(FakeModel(), photos, out)


def test_an_unusable_output_folder_is_refused_before_embedding(tmp_path):
    """--out under a file, or a broken link, used to end in a FileExistsError /
    NotADirectoryError traceback after every photo was embedded."""
    from facenet.errors import FaceNetError

    class NoEmbedding(FakeModel):
        def represent(self, image):
            raise AssertionError("embedded before the output folder was checked")

    photos = [save(tmp_path / "p.png", photo((1, 0, 30)))]
    (tmp_path / "afile").write_text("")
    (tmp_path / "link").symlink_to(tmp_path / "gone")
    for out, message in (("afile/sub", "is not a folder"), ("link", "broken link")):
        with pytest.raises(FaceNetError, match=message):
            cluster_photos(NoEmbedding(), photos, tmp_path / out)


def test_running_out_of_memory_is_one_line(tmp_path, monkeypatch):
    """Agglomerative's n x n matrix on a large archive used to end in a MemoryError traceback."""
    from facenet.clustering import photos as P
    from facenet.errors import FaceNetError

    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(P, "cluster", no_memory)
    photos = [save(tmp_path / "p.png", photo((1, 0, 30)))]
    with pytest.raises(FaceNetError, match="not enough memory to cluster 1 face with"):
        cluster_photos(FakeModel(), photos, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_folder_without_photos_is_reported_once(tmp_path):
    """`facenet cluster` on photos plus an empty folder: the folder is a failed input (exit 1,
    one line naming it), not silently dropped, and no failure is printed twice."""
    from click.testing import CliRunner

    from facenet.cli import main

    (tmp_path / "empty").mkdir()
    (tmp_path / "text.jpg").write_text("not an image")
    args = ["cluster", "examples/a_1.jpg", "examples/a_2.jpg", str(tmp_path / "empty"),
            str(tmp_path / "text.jpg"), "-o", str(tmp_path / "out")]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert "from 4 photos" in result.output, result.output
    assert result.output.count("no photos in this folder") == 1
    assert result.output.count("not an image file") == 1  # the CLI's line, no log line too
    assert "Traceback" not in result.output


def test_a_run_that_clusters_nothing_leaves_nothing_that_blocks_a_re_run(tmp_path):
    """`facenet cluster` on photos without a face exited 2 but wrote --out (index.html,
    clusters.json): the re-run with a photo that has one was refused, "output folder exists
    and is not empty". Now a run with no face writes nothing, and the re-run works."""
    from click.testing import CliRunner

    from facenet.cli import main

    blank = save(tmp_path / "blank.png", np.full((120, 120, 3), 128, np.uint8))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["cluster", str(blank), "-o", str(out)])
    assert result.exit_code == 2, result.output
    assert "nothing written" in result.output and "Traceback" not in result.output
    assert not out.exists() and list(tmp_path.iterdir()) == [blank]
    again = CliRunner().invoke(main, ["cluster", str(blank), "examples/a_1.jpg", "-o", str(out)])
    assert again.exit_code == 0, again.output
    assert (out / "index.html").is_file() and "1 face from 2 photos" in again.output


def test_cluster_outputs_inside_the_photo_folder_are_not_inputs(tmp_path):
    """`facenet cluster photos -o photos/clusters`, then again into photos/clusters2: the
    second run used to embed the first one's face crops as photos (faces counted twice). A
    folder holding clusters.json and index.html (an earlier output), the --out folder and a
    killed run's hidden work folder are skipped when walking SRC; a folder given as SRC
    itself is taken as given."""
    import shutil

    from click.testing import CliRunner

    from facenet.cli import main
    from facenet.clustering.photos import find_photos

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a_1.jpg", "a_2.jpg", "b_1.jpg"):
        shutil.copy(f"examples/{name}", photos)
    first = CliRunner().invoke(main, ["cluster", str(photos), "-o", str(photos / "clusters")])
    assert first.exit_code == 0 and "3 faces from 3 photos" in first.output, first.output
    crops = find_photos([photos / "clusters"])  # given as SRC: its crops are the photos
    assert len(crops) == 3 and all("clusters" in p.parts for p in crops)
    (photos / ".clusters2.tmp-0123abcd").mkdir()  # a killed run's work folder
    shutil.copy(crops[0], photos / ".clusters2.tmp-0123abcd" / "crop.jpg")
    (photos / "clusters2").mkdir()
    shutil.copy(crops[0], photos / "clusters2")  # --out itself, not empty: refused below
    assert find_photos([photos], exclude=photos / "clusters2") == sorted(photos.glob("*.jpg"))
    shutil.rmtree(photos / "clusters2")
    again = CliRunner().invoke(main, ["cluster", str(photos), "-o", str(photos / "clusters2")])
    assert again.exit_code == 0 and "3 faces from 3 photos" in again.output, again.output
    same = CliRunner().invoke(main, ["cluster", str(photos), "-o", str(photos / "clusters")])
    assert same.exit_code == 2 and "not empty" in same.output  # an earlier output is kept


def test_bad_arguments_are_one_argument_error():
    """None or a number as embeddings, a threshold or min_size that is no number, a model name
    for `model`, or a string seed failed with a TypeError, AttributeError or ValueError from
    inside float(), NumPy or a comparison; 0 sweeps left every face alone. Each is now one
    line, an ArgumentError (still a ValueError, as documented)."""
    from facenet.errors import ArgumentError

    x = np.ones((3, 8))
    cases = [
        ({"embeddings": None}, "^embeddings must be an n x d array; got NoneType"),
        ({"embeddings": 5}, "^embeddings must be an n x d array; got int"),
        ({"threshold": "x"}, r"^threshold must be a squared-L2 distance in \(0, 4\]; got x"),
        ({"min_size": "2"}, "^min_size must be an integer of at least 1; got '2'"),
        ({"min_size": None}, "^min_size must be an integer of at least 1"),
        ({"min_size": float("nan")}, "^min_size must be an integer of at least 1"),
        ({"model": "dlib-resnet"}, "^model must be the FaceNet that made the embeddings; got str"),
        ({"method": "chinese_whispers", "seed": "x"}, "^seed must be an integer of at least 0"),
        ({"method": "chinese_whispers", "iterations": 0}, "^iterations must be an integer"),
    ]
    for options, message in cases:
        options = {"embeddings": x, **options}
        with pytest.raises(ArgumentError, match=message):
            cluster(options.pop("embeddings"), **options)
    assert list(cluster(x, threshold=0.5, min_size=np.int64(2))) == [0, 0, 0]
