"""The `facenet` command as a new user meets it (issue 15): exit statuses, JSON lines, one flag
convention for every command, and what the output tells. Real subprocesses, the bundled
model, the example photos and a few LFW photos; no figure of the model is hard-coded."""

from __future__ import annotations

import inspect
import re

import pytest

from ..conftest import lfw_image
from .helpers import EXAMPLES, facenet, grey_photo, group_photo

A1, A2, B1, B2, C1 = (str(EXAMPLES / f"{n}.jpg") for n in ("a_1", "a_2", "b_1", "b_2", "c_1"))


@pytest.fixture(scope="module")
def threshold() -> float:
    """The bundled model's verification threshold (what every command defaults to)."""
    from facenet import FaceNet

    return FaceNet.load().threshold


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    """A gallery built with the CLI: Colin Powell (a_1) only."""
    path = tmp_path_factory.mktemp("gallery") / "people.db"
    assert facenet("gallery", "create", path).code == 0
    result = facenet("gallery", "enroll", path, "--name", "Colin Powell", A1)
    assert result.code == 0, result.stderr
    return path


# -- item 3: exit statuses ------------------------------------------------------------------------


def test_identify_missing_photo_exits_2(gallery):
    result = facenet("identify", "missing.jpg", "-g", gallery)
    assert result.code == 2 and "missing.jpg" in result.stderr


def test_identify_some_failed_exits_1(gallery):
    result = facenet("identify", A2, "missing.jpg", "-g", gallery, "--json")
    assert result.code == 1
    rows = result.json_lines()
    assert [("error" in r) for r in rows] == [False, True]


def test_enroll_nothing_enrolled_exits_2(gallery, tmp_path):
    text = tmp_path / "text.jpg"
    text.write_text("not a photo")
    grey = grey_photo(tmp_path / "grey.jpg")
    result = facenet("gallery", "enroll", gallery, "--name", "X", grey, text)
    assert result.code == 2, result.stdout + result.stderr
    assert "grey.jpg" in result.stderr and "text.jpg" in result.stderr


def test_enroll_some_enrolled_exits_1(tmp_path):
    path = tmp_path / "g.db"
    facenet("gallery", "create", path)
    grey = grey_photo(tmp_path / "grey.jpg")
    result = facenet("gallery", "enroll", path, "--name", "Serena Williams", B1, grey, "--json")
    assert result.code == 1
    rows = result.json_lines()
    assert sorted("error" in r for r in rows) == [False, True]
    assert next(r for r in rows if "error" in r)["photo"] == str(grey)


def test_usage_error_exits_2():
    assert facenet("verify", A1).code == 2
    assert facenet("identify", A1).code == 2  # no --gallery


# -- item 4: verify on a group photo --------------------------------------------------------------


def test_verify_group_photo_says_which_face(tmp_path, threshold):
    group = group_photo(tmp_path / "group.jpg", EXAMPLES / "b_1.jpg", EXAMPLES / "a_2.jpg")
    plain = facenet("verify", A1, group)
    assert plain.code == 0, plain.stderr
    assert "2 faces found" in plain.stdout and "--all-faces" in plain.stdout
    (one,) = facenet("verify", A1, group, "--json").json_lines()
    (best,) = facenet("verify", A1, group, "--json", "--all-faces").json_lines()
    assert one["faces"]["second"]["found"] == best["faces"]["second"]["found"] == 2
    assert best["distance"] <= one["distance"]
    assert best["same"] == (best["distance"] <= threshold)
    width = 250  # b_1 fills the left of the group photo; a_2 (Colin Powell) is on the right
    assert one["faces"]["second"]["box"][0] < width <= best["faces"]["second"]["box"][0]


# -- item 5: one convention for every command -----------------------------------------------------

PROGRESS = [
    ["embed"], ["identify"], ["cluster"], ["align"], ["evaluate", "lfw"], ["evaluate", "pairs"],
    ["gallery", "enroll"], ["classify", "train"], ["classify", "predict"],
]  # fmt: skip
REPORTING = [
    ["verify"], ["embed"], ["info"], ["identify"], ["cluster"], ["align"], ["evaluate", "lfw"],
    ["evaluate", "pairs"], ["gallery", "enroll"], ["gallery", "list"], ["classify", "predict"],
]  # fmt: skip


@pytest.mark.parametrize("command", PROGRESS, ids=" ".join)
def test_progress_flag_everywhere(command):
    assert "--progress / --no-progress" in facenet(*command, "--help").stdout


@pytest.mark.parametrize("command", REPORTING, ids=" ".join)
def test_json_flag_everywhere(command):
    assert "--json" in facenet(*command, "--help").stdout


def test_j_has_one_meaning():
    align = facenet("align", "--help").stdout
    assert re.search(r"-j, --workers INTEGER.*processes", align, re.I | re.S)
    serve = facenet("serve", "--help").stdout
    assert "--workers" not in serve and "-j," not in serve and "--threads" in serve


def test_identify_k_default_is_the_apis():
    from facenet.gallery import Gallery
    from facenet.server import routes

    help_text = facenet("identify", "--help").stdout
    shown = re.search(r"-k, --k INTEGER.*?\[default: (\d+)", help_text, re.S)
    api = inspect.signature(routes.identify).parameters["k"].default
    python = inspect.signature(Gallery.identify).parameters["k"].default
    assert int(shown[1]) == api == python


def test_json_lines_parse(tmp_path, gallery):
    """Each reporting command's --json output is JSON lines on small real data."""
    out = tmp_path / "clusters"
    rows = facenet("cluster", A1, A2, B1, "--out", out, "--json").json_lines()
    assert [r["photo"] for r in rows] == [A1, A2, B1]
    assert all(len(r["faces"]) == 1 and "cluster" in r["faces"][0] for r in rows)
    rows = facenet("embed", A1, grey_photo(tmp_path / "g.png"), "--out", tmp_path / "e.npz",
                   "--on-missing", "nan", "--json").json_lines()  # fmt: skip
    assert ["error" in r for r in rows] == [False, True]
    (row,) = facenet("gallery", "list", gallery, "--json").json_lines()
    assert row["name"] == "Colin Powell"


# -- item 6: what the output says -----------------------------------------------------------------


def test_unknown_row_names_the_nearest_person(gallery):
    result = facenet("identify", B1, "-g", gallery)
    assert result.code == 0
    assert "unknown" in result.stdout and "nearest Colin Powell" in result.stdout


def test_counts_read_as_english(tmp_path):
    out = tmp_path / "c"
    result = facenet("cluster", A1, "--out", out)
    assert result.code == 0, result.stderr
    text = (out / "index.html").read_text() + result.stdout + result.stderr
    assert "(1 faces)" not in text and "1 faces" not in text and "1 photos" not in text


def test_info_counts_onnx_parameters():
    result = facenet("info")
    line = next(x for x in result.stdout.splitlines() if x.startswith("parameters"))
    assert "n/a" not in line and int(re.search(r"[\d,]+", line)[0].replace(",", "")) > 0


def test_evaluate_names_val_and_tar(tmp_path):
    people = ["Colin_Powell", "George_W_Bush", "Tony_Blair", "Gerhard_Schroeder"]
    lines = []
    for fold in range(2):
        for i, name in enumerate(people):
            other = people[(i + 1) % len(people)]
            a, b = lfw_image(name, 2 * fold + 1), lfw_image(name, 2 * fold + 2)
            lines += [f"{fold}\t1\t{a}\t{b}", f"{fold}\t0\t{a}\t{lfw_image(other, 2 * fold + 1)}"]
    (tmp_path / "pairs.tsv").write_text("\n".join(lines) + "\n")
    result = facenet("evaluate", "pairs", tmp_path / "pairs.tsv", "--root", "/",
                     "--out", tmp_path / "out")  # fmt: skip
    assert result.code == 0, result.stderr
    rows = {line.split("  ")[1].strip(): line for line in result.stdout.splitlines()[1:]}
    val = next(v for k, v in rows.items() if k.startswith("VAL@FAR"))
    tar = next(v for k, v in rows.items() if k.startswith("TAR@FAR"))
    assert "fold" in val and "all pairs" in tar


# -- item 7: the classifier rejects strangers -----------------------------------------------------


def test_classifier_rejects_a_stranger(tmp_path, threshold):
    root = tmp_path / "people"
    for name in ("Colin_Powell", "Hugo_Chavez"):
        (root / name).mkdir(parents=True)
        for i in (1, 2, 3):
            (root / name / f"{i}.jpg").write_bytes(lfw_image(name, i).read_bytes())
    clf = tmp_path / "people.clf"
    assert facenet("classify", "train", root, "--out", clf, "--kind", "knn").code == 0
    stranger = str(lfw_image("Laura_Bush", 1))
    (row,) = facenet("classify", "predict", stranger, "-c", clf, "--json").json_lines()
    (face,) = row["faces"]
    assert face["label"] == "unknown" and face["nearest"] in ("Colin_Powell", "Hugo_Chavez")
    assert face["distance"] > threshold
    args = ("classify", "predict", stranger, "-c", clf, "--json", "--max-distance", "4")
    (row,) = facenet(*args).json_lines()
    assert row["faces"][0]["label"] == face["nearest"]  # without the reject: a wrong name


# -- item 8: an embeddings file with absolute paths -----------------------------------------------


def test_evaluate_embeddings_with_absolute_paths(tmp_path):
    root = lfw_image("Colin_Powell", 1).parents[1]
    names = [("Colin_Powell", 1), ("Colin_Powell", 2), ("Tony_Blair", 1), ("Tony_Blair", 2)]
    rel = [f"{n}/{n}_{i:04d}.jpg" for n, i in names]
    lines = [f"{f}\t1\t{rel[0]}\t{rel[1]}\n{f}\t0\t{rel[0]}\t{rel[2]}\n{f}\t1\t{rel[2]}\t{rel[3]}"
             for f in (0, 1)]  # fmt: skip
    (tmp_path / "pairs.tsv").write_text("\n".join(lines) + "\n")
    npz = tmp_path / "e.npz"
    assert facenet("embed", *(root / r for r in rel), "--out", npz).code == 0
    ok = facenet("evaluate", "pairs", tmp_path / "pairs.tsv", "--root", root,
                 "--embeddings", npz, "--out", tmp_path / "out")  # fmt: skip
    assert ok.code == 0, ok.stderr
    assert "no usable embedding" not in ok.stderr and "unusable" not in ok.stdout
    other = tmp_path / "other"
    other.mkdir()
    bad = facenet("evaluate", "pairs", tmp_path / "pairs.tsv", "--root", other,
                  "--embeddings", npz, "--out", tmp_path / "out2")  # fmt: skip
    assert bad.code == 2 and "none of the" in bad.stderr


# -- the named-model commands (issue 14) follow the conventions ---------------------------------


def test_models_json_lines():
    rows = facenet("models", "--json").json_lines()
    assert sum(r["default"] for r in rows) == 1
    assert all(r["name"] and r["file"] for r in rows)


def test_gallery_calibrate_json(tmp_path):
    path = tmp_path / "g.db"
    facenet("gallery", "create", path)
    facenet("gallery", "enroll", path, "--name", "Colin Powell", A1, A2)
    facenet("gallery", "enroll", path, "--name", "Serena Williams", B1, B2)
    result = facenet("gallery", "calibrate", path, "--dry-run")
    assert result.code == 2 and "needs at least 100 faces" in result.stderr  # 1% of 4 faces
    result = facenet("gallery", "calibrate", path, "--far", "0.25", "--dry-run", "--json")
    assert result.code == 0, result.stderr
    (row,) = result.json_lines()
    assert 0 < row["threshold"] <= 4
    lonely = tmp_path / "one.db"
    facenet("gallery", "create", lonely)
    facenet("gallery", "enroll", lonely, "--name", "Colin Powell", A1)
    result = facenet("gallery", "calibrate", lonely)
    assert result.code == 2 and "Traceback" not in result.stderr
