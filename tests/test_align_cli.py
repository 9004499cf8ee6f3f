"""`facenet align` / align_dataset on a tiny folder-per-identity dataset."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from facenet.cli import main
from facenet.detect.aligner import align_dataset

LFW = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lfw" / "lfw-deepfunneled"
pytestmark = pytest.mark.skipif(not LFW.is_dir(), reason=f"LFW images not found at {LFW}")
PEOPLE = ["Colin_Powell", "Serena_Williams", "Hugo_Chavez"]


@pytest.fixture()
def dataset(tmp_path) -> Path:
    """3 identities x 2 LFW images, a note (not an image), a corrupt .jpg and a blank image."""
    src = tmp_path / "src"
    for person in PEOPLE:
        (src / person).mkdir(parents=True)
        for i in (1, 2):
            name = f"{person}_{i:04d}.jpg"
            shutil.copyfile(LFW / person / name, src / person / name)
    (src / "notes.txt").write_text("not an image\n")
    (src / PEOPLE[0] / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    Image.new("RGB", (200, 160), (40, 40, 40)).save(src / PEOPLE[1] / "blank.png")
    return src


def run(*args: str):
    return CliRunner().invoke(
        main, ["align", *args, "--no-progress", "--json"], catch_exceptions=False
    )


def test_align_cli_report_and_resume(dataset, tmp_path, monkeypatch):
    monkeypatch.setattr("facenet.detect.aligner.CHUNK", 2)  # several tasks: the pool path runs
    dst = tmp_path / "out"
    result = run(str(dataset), str(dst), "--workers", "2")
    assert result.exit_code == 1, result.output  # a blank image and a broken one: some failed
    *failed, counts = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert sorted(f["image"] for f in failed) == [
        "Colin_Powell/broken.jpg",
        "Serena_Williams/blank.png",
    ]
    assert counts["images"] == 8 and counts["aligned"] == 6 and counts["processed_this_run"] == 8

    outputs = sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*.png"))
    assert outputs == [f"{p}/{p}_{i:04d}.png" for p in sorted(PEOPLE) for i in (1, 2)]
    for path in dst.rglob("*.png"):
        with Image.open(path) as im:
            assert im.size == (160, 160) and im.mode == "RGB"
    assert not [p for p in dst.rglob("*") if p.name.endswith(".tmp")]

    report = json.loads((dst / "align_report.json").read_text())
    assert report["counts"] == {
        "images": 8,
        "aligned": 6,
        "fallback": 0,
        "padded": 0,
        "no_face": 1,
        "several_faces": report["counts"]["several_faces"],
        "unreadable": 1,
        "ignored_files": 1,
        "processed_this_run": 8,
        "skipped_already_done": 0,
    }
    assert report["no_face"] == ["Serena_Williams/blank.png"]
    assert [e["path"] for e in report["unreadable"]] == ["Colin_Powell/broken.jpg"]
    assert "broken.jpg" in report["unreadable"][0]["error"]
    assert report["ignored_files"] == ["notes.txt"]
    assert report["fallback"] == [] and report["padded"] == []
    assert report["settings"]["size"] == 160 and report["settings"]["mode"] == "crop"
    assert report["settings"]["format"] == "png"

    # resumable: a second run does no work and keeps the bookkeeping
    stamps = {p: p.stat().st_mtime_ns for p in dst.rglob("*.png")}
    again = run(str(dataset), str(dst), "--workers", "1")
    assert again.exit_code == 1, again.output
    report2 = json.loads((dst / "align_report.json").read_text())
    assert report2["counts"]["processed_this_run"] == 0
    assert report2["counts"]["skipped_already_done"] == 8
    for key in ("no_face", "unreadable", "several_faces", "ignored_files"):
        assert report2[key] == report[key]
    assert {p: p.stat().st_mtime_ns for p in dst.rglob("*.png")} == stamps

    # a deleted crop is redone, and only it
    victim = dst / "Hugo_Chavez" / "Hugo_Chavez_0002.png"
    victim.unlink()
    third = align_dataset(dataset, dst, workers=1, progress=False)
    assert third["counts"]["processed_this_run"] == 1 and victim.exists()

    # other settings into the same folder are refused (exit 2, one line)
    clash = run(str(dataset), str(dst), "--size", "112")
    assert clash.exit_code == 2
    assert "other settings" in clash.output


def test_similarity_with_fallback(dataset, tmp_path):
    dst = tmp_path / "sim"
    report = align_dataset(
        dataset, dst, size=112, mode="similarity", keep_fallback=True, workers=1, progress=False
    )
    assert report["counts"]["aligned"] == 6 and report["counts"]["fallback"] == 1
    assert report["fallback"] == ["Serena_Williams/blank.png"]
    assert report["no_face"] == []
    blank = np.asarray(Image.open(dst / "Serena_Williams" / "blank.png"))
    assert blank.shape == (112, 112, 3) and (blank == 40).all()
    face = np.asarray(Image.open(dst / "Colin_Powell" / "Colin_Powell_0001.png"))
    assert face.shape == (112, 112, 3) and face.std() > 20


def test_flat_folder_and_missing_source(tmp_path):
    src = tmp_path / "flat"
    src.mkdir()
    shutil.copyfile(LFW / PEOPLE[0] / f"{PEOPLE[0]}_0001.jpg", src / "a.jpg")
    Image.open(src / "a.jpg").save(src / "a.png")  # same stem: outputs must not collide
    report = align_dataset(src, tmp_path / "flat_out", workers=1, progress=False)
    assert report["counts"]["aligned"] == 2
    assert sorted(p.name for p in (tmp_path / "flat_out").glob("*.png")) == [
        "a.jpg.png",
        "a.png.png",
    ]

    missing = run(str(tmp_path / "nope"), str(tmp_path / "x"))
    assert missing.exit_code == 2
    assert "no such folder" in missing.output


def test_tight_crops_are_found_by_the_padded_retry(tmp_path):
    from facenet.detect import MTCNN
    from facenet.images import load_image

    image = load_image(LFW / "Calista_Flockhart" / "Calista_Flockhart_0001.jpg")
    x1, y1, x2, y2 = (int(round(v)) for v in MTCNN().detect(image)[0].box)
    dx, dy = (x2 - x1) // 10, (y2 - y1) // 10
    src = tmp_path / "tight"
    src.mkdir()
    Image.fromarray(image[y1 + dy : y2 - dy, x1 + dx : x2 - dx]).save(src / "face.png")

    plain = align_dataset(src, tmp_path / "plain", workers=1, progress=False, pad_retry=False)
    assert plain["no_face"] == ["face.png"]
    retried = align_dataset(src, tmp_path / "retried", workers=1, progress=False)
    assert retried["counts"]["aligned"] == 1 and retried["padded"] == ["face.png"]
    assert retried["settings"]["pad_retry"] is True
    assert (tmp_path / "retried" / "face.png").exists()


def test_a_report_that_cannot_be_written_is_one_line(dataset, tmp_path, monkeypatch):
    """A full disk when the report is written was an OSError traceback from deep inside; the
    crops aligned so far stay, and a re-run resumes."""
    import errno

    def full(path, write):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("facenet.outputs.write_temporary", full)
    dst = tmp_path / "out"
    result = CliRunner().invoke(main, ["align", str(dataset), str(dst), "--no-progress"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert result.output.strip().splitlines()[-1] == (
        f"Error: cannot write {dst / 'align_report.json'} (No space left on device)"
    )


def test_a_source_without_images_says_so(tmp_path):
    """An empty SRC (or one of notes only) is 'nothing done', exit 2, with a line saying why,
    not a bare exit status after '0 of 0 images aligned'."""
    src = tmp_path / "src"
    (src / "empty_person").mkdir(parents=True)
    (src / "notes.txt").write_text("not an image\n")
    result = run(str(src), str(tmp_path / "out"))
    assert result.exit_code == 2
    assert f"Error: no images under {src} (1 other file ignored)" in result.stderr
    assert all(json.loads(line) for line in result.stdout.splitlines())


def test_a_dst_of_other_files_is_refused(dataset, tmp_path):
    """A DST that holds files but no align_report.json is not a folder align made: a user's
    own A/A_0001.png there was counted 'aligned' (never a crop), and an align of SRC/A into
    SRC's parent mixed crops with the dataset. Refused, one line, nothing written; the
    report is written before the first crop, so an interrupted run still resumes."""
    dst = tmp_path / "mine"
    person = PEOPLE[0]
    (dst / person).mkdir(parents=True)
    own = dst / person / f"{person}_0001.png"
    Image.new("RGB", (300, 200), (200, 10, 10)).save(own)
    before = own.read_bytes()
    result = run(str(dataset), str(dst))
    assert result.exit_code == 2, result.output
    assert f"Error: {dst}: holds files but no align_report.json" in result.stderr
    assert own.read_bytes() == before
    assert sorted(p.name for p in dst.rglob("*")) == [person, own.name]

    tree = sorted(dataset.rglob("*"))
    parent = run(str(dataset / person), str(dataset))
    assert parent.exit_code == 2 and "no align_report.json" in parent.stderr
    assert sorted(dataset.rglob("*")) == tree


def test_an_empty_src_or_dst_is_refused_not_the_current_folder(dataset, tmp_path, monkeypatch):
    """`facenet align "$SRC" "$DST"` with DST unset aligned into the current folder (click's
    Path turned "" into "."), and with SRC unset aligned the current folder: one line, exit 2."""
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    result = run(str(dataset), "")
    assert result.exit_code == 2, result.output
    assert "Error: the output path is empty" in result.stderr
    assert not list(here.iterdir())
    result = run("", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    assert "Error: the source path is empty" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_named_pipe_in_the_tree_is_ignored_not_waited_on(dataset, tmp_path):
    """A FIFO called face.jpg under SRC blocked align forever in open(), every run again; a
    dangling link stays an unreadable image (a photo that went missing)."""
    os.mkfifo(dataset / PEOPLE[0] / "pipe.jpg")
    (dataset / PEOPLE[0] / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    result = run(str(dataset), str(tmp_path / "out"), "-j", "1")
    assert result.exit_code == 1, result.output
    report = json.loads((tmp_path / "out" / "align_report.json").read_text())
    assert f"{PEOPLE[0]}/pipe.jpg" in report["ignored_files"]
    assert f"{PEOPLE[0]}/gone.jpg" in [e["path"] for e in report["unreadable"]]
