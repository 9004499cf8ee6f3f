"""Align a whole dataset: detect the most prominent face of every image and save its crop.

`align_dataset(src, dst)` keeps the layout of `src` (folder per identity, or flat), writes one
lossless PNG per image (`<name>.png`), and `dst/align_report.json`. It is resumable: images
whose output exists, or that an earlier run with the same settings found faceless or
unreadable, are not processed again. Writes are atomic (temporary file + os.replace), so an
interrupted run never leaves half-written crops. Work is spread over processes, each with its
own detector and one ONNX Runtime thread.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import FaceNetError, ImageError, OutputError
from ..images import IMAGE_SUFFIXES, load_image
from ..metadata import ALIGNMENT_MODES, check_choice
from ..outputs import check_output_folder, make_folder
from .crops import aligned, crop_face
from .detector import make_detector
from .mtcnn import MTCNN

log = logging.getLogger(__name__)

REPORT_NAME = "align_report.json"
OUTPUT_FORMAT = "png"
#: Images per task sent to a worker (one detect_batch call).
CHUNK = 8
#: The report is rewritten after this many images, so an interrupted run keeps its bookkeeping.
CHECKPOINT = 2000


def align_dataset(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    size: int = 160,
    margin: float = 32,
    mode: str = "crop",
    keep_fallback: bool = False,
    workers: int | None = None,
    pad_retry: bool = True,
    progress: bool = True,
    detector: MTCNN | None = None,
) -> dict:
    """Align every image under `src` into `dst`; returns the report (also saved as JSON).

    Args:
        src: a folder of images, or of identity folders of images.
        dst: output folder (created), outside `src`; same relative layout, `.png` files.
        size, margin, mode: as `align_face`.
        keep_fallback: when no face is found, save the centred square crop instead of nothing
            (listed under "fallback" in the report).
        workers: processes (default: CPU count); 1 runs in this process.
        pad_retry: when no face is found, look again in a copy with its borders extended by a
            quarter of its size (edge pixels repeated): MTCNN misses faces that fill the whole
            frame, as in datasets of tight face crops. Such crops come from the padded copy and
            are listed under "padded" in the report.
        progress: a tqdm bar on stderr.
        detector: the detector to use (default `make_detector()`); workers build their own copy.
    """
    job = _job(src, size, margin, mode, keep_fallback, pad_retry)
    src, dst = Path(src), _destination(src, dst)
    detector = detector or make_detector()
    settings = _settings(job, detector)
    _refuse_foreign(dst)
    make_folder(dst)
    images, ignored = _scan(src, dst)
    status, todo = _resume(src, dst, images, _previous_report(dst, settings), keep_fallback)
    skipped = len(images) - len(todo)
    workers = max(1, workers or os.cpu_count() or 1)

    def report(done: int) -> dict:
        return _report(src, dst, settings, images, ignored, status, done, skipped)

    _write_report(dst / REPORT_NAME, report(0))  # before any crop: DST is ours from now on
    done = 0
    try:
        for results in _run(todo, job, detector, workers, progress):
            status.update(results)
            done += len(results)
            if done % CHECKPOINT < len(results):  # bookkeeping survives an interruption
                _write_report(dst / REPORT_NAME, report(done))
    finally:
        final = report(done)
        _write_report(dst / REPORT_NAME, final)
    return final


def _job(src, size: int, margin: float, mode: str, keep_fallback: bool, pad_retry: bool) -> dict:
    """The checked options every worker needs."""
    check_choice("mode", mode, ALIGNMENT_MODES)
    if int(size) < 1:
        raise ValueError(f"size must be positive; got {size!r}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0; got {margin!r}")
    if os.fspath(src) == "":  # Path("") is the current folder: "$SRC" with SRC unset
        raise FaceNetError("the source path is empty (an unset shell variable?)")
    if not Path(src).is_dir():  # a photo given as SRC exists: "no such folder" misled
        what = "not a folder (SRC is a dataset folder)" if Path(src).exists() else "no such folder"
        raise FaceNetError(f"{src}: {what}")
    return {
        "size": int(size),
        "margin": float(margin),
        "mode": mode,
        "keep_fallback": keep_fallback,
        "pad_retry": pad_retry,
    }


def _destination(src, dst) -> Path:
    """`dst`, checked: not `src` nor inside it (symlinks resolved), where the crops would be
    taken as source images by every later run; not a file nor under one."""
    src, checked = Path(src).resolve(), check_output_folder(dst)  # checked first: "" is no "."
    where = checked.resolve()
    if where == src or src in where.parents:
        raise OutputError(f"{dst}: the output folder must be outside the source folder {src}")
    return checked


def _refuse_foreign(dst: Path) -> None:
    """A DST holding files but no report is not a folder align made: its files would count as
    crops already done (a user's own X.png taken for a crop of X.jpg), or crops would land among
    a dataset's images (DST a parent of SRC). Hidden files (.DS_Store) do not count."""
    if (dst / REPORT_NAME).exists() or not dst.is_dir():
        return
    try:
        foreign = any(not entry.name.startswith(".") for entry in dst.iterdir())
    except OSError:
        return  # unreadable: make_folder and the writes report it
    if foreign:
        raise OutputError(
            f"{dst}: holds files but no {REPORT_NAME}, so it is no folder `facenet align` "
            "made; give a new or empty output folder"
        )


def _settings(job: dict, detector: MTCNN) -> dict:
    """What the crops depend on: a previous report with other settings is not resumed."""
    return {
        "size": job["size"],
        "margin": job["margin"],
        "mode": job["mode"],
        "keep_fallback": bool(job["keep_fallback"]),
        "pad_retry": bool(job["pad_retry"]),
        "format": OUTPUT_FORMAT,
        "detector": {
            "min_face_size": detector.min_face_size,
            "thresholds": list(detector.thresholds),
            "factor": detector.factor,
            "max_side": detector.max_side,
        },
    }


def _resume(src: Path, dst: Path, images, previous: dict, keep_fallback: bool):
    """(status of images already done, [(source, output, relative path)] still to align)."""
    outputs = _output_names(images)
    status: dict[str, dict] = {}  # relative path -> {"status": ..., "faces": n, "error": ...}
    todo = []
    for rel in images:
        out = dst / outputs[rel]
        known = previous.get(rel)
        if out.exists():
            status[rel] = (
                known
                if known and known["status"] in ("aligned", "fallback")
                else {"status": "aligned"}
            )
        elif (
            known
            and known["status"] in ("no_face", "unreadable")
            and not (keep_fallback and known["status"] == "no_face")
        ):
            status[rel] = known
        else:
            todo.append((str(src / rel), str(out), rel))
    return status, todo


# ---------------------------------------------------------------------- work


def _run(todo, job, detector, workers, progress) -> Iterator[list[tuple[str, dict]]]:
    from tqdm import tqdm

    chunks = [todo[i : i + CHUNK] for i in range(0, len(todo), CHUNK)]
    bar = tqdm(total=len(todo), unit="img", desc="align", file=sys.stderr, disable=not progress)
    with bar:
        if workers == 1 or len(chunks) <= 1:
            _init(detector, job)
            for chunk in chunks:
                results = _align_chunk(chunk)
                bar.update(len(results))
                yield results
            return
        ctx = mp.get_context("spawn")  # fork after ONNX Runtime threads start can deadlock
        with ctx.Pool(
            min(workers, len(chunks)), initializer=_init, initargs=(detector, job, 1)
        ) as pool:
            for results in pool.imap_unordered(_align_chunk, chunks):
                bar.update(len(results))
                yield results


_worker: dict = {}


def _init(detector: MTCNN, job: dict, threads: int | None = None) -> None:
    if threads is not None:  # a pool worker: one thread each, the pool provides the parallelism
        detector.threads = threads
    _worker["detector"] = detector
    _worker["job"] = job


def _align_chunk(chunk: list[tuple[str, str, str]]) -> list[tuple[str, dict]]:
    detector: MTCNN = _worker["detector"]
    job = _worker["job"]
    loaded, results = [], []
    for src, out, rel in chunk:
        try:
            loaded.append((load_image(src, rel), out, rel))
        except ImageError as exc:
            results.append((rel, {"status": "unreadable", "error": str(exc)}))
    images = [image for image, _, _ in loaded]
    detections = detector.detect_batch(images) if images else []
    padded = [False] * len(images)
    missed = [k for k, faces in enumerate(detections) if not faces]
    if job["pad_retry"] and missed:
        extended = [edge_pad(images[k]) for k in missed]
        for k, image, faces in zip(missed, extended, detector.detect_batch(extended), strict=True):
            if faces:
                images[k], detections[k], padded[k] = image, faces, True
    cut = aligned(job["size"], job["mode"], job["margin"])
    fallback = job["size"] if job["keep_fallback"] else None
    for k, (_, out, rel) in enumerate(loaded):
        face = crop_face(images[k], detections[k], cut, fallback)
        if face is None:
            results.append((rel, {"status": "no_face", "faces": 0}))
            continue
        if face.fallback:
            result = {"status": "fallback", "faces": 0}
        else:
            result = {"status": "aligned", "faces": len(detections[k])}
            if padded[k]:
                result["padded"] = True
        _save(face.crop, Path(out))
        results.append((rel, result))
    return results


def edge_pad(image: np.ndarray, fraction: float = 0.25) -> np.ndarray:
    """`image` with each border extended by `fraction` of its longer side, edge pixels repeated."""
    pad = int(round(fraction * max(image.shape[:2])))
    return np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="edge")


def _save(crop: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        Image.fromarray(crop).save(tmp, format="PNG", compress_level=3)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------------- bookkeeping


def _scan(src: Path, dst: Path) -> tuple[list[str], list[str]]:
    """Relative paths of images and of other (ignored) files under src, sorted; dst is skipped."""
    images, ignored = [], []
    dst = dst.resolve()
    for root, dirs, files in os.walk(src):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (here / d).resolve() != dst)
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = here / name
            rel = path.relative_to(src).as_posix()
            # a FIFO, socket or device is no photo (open() on a FIFO waits forever); a dangling
            # link stays an image, reported unreadable
            special = path.exists() and not path.is_file()
            image = Path(name).suffix.lower() in IMAGE_SUFFIXES and not special
            (images if image else ignored).append(rel)
    return images, ignored


def _output_names(images: list[str]) -> dict[str, str]:
    """`a/b.jpg` -> `a/b.png`; when two sources would collide (b.jpg, b.png), `a/b.jpg.png`."""
    plain = {rel: Path(rel).with_suffix(f".{OUTPUT_FORMAT}").as_posix() for rel in images}
    seen: dict[str, int] = {}
    for out in plain.values():
        seen[out] = seen.get(out, 0) + 1
    return {rel: out if seen[out] == 1 else f"{rel}.{OUTPUT_FORMAT}" for rel, out in plain.items()}


def _previous_report(dst: Path, settings: dict) -> dict[str, dict]:
    path = dst / REPORT_NAME
    if not path.exists():
        return {}
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        log.warning("%s is unreadable; starting its bookkeeping afresh", path)
        return {}
    if old.get("settings") != settings:
        raise FaceNetError(
            f"{dst} was aligned with other settings ({old.get('settings')}); "
            "use a new output folder or delete it"
        )
    status = {}
    for rel in old.get("no_face", []):
        status[rel] = {"status": "no_face", "faces": 0}
    for entry in old.get("unreadable", []):
        status[entry["path"]] = {"status": "unreadable", "error": entry.get("error", "")}
    for rel in old.get("fallback", []):
        status[rel] = {"status": "fallback", "faces": 0}
    for entry in old.get("several_faces", []):
        status[entry["path"]] = {"status": "aligned", "faces": entry["faces"]}
    for rel in old.get("padded", []):
        status.setdefault(rel, {"status": "aligned", "faces": 1})["padded"] = True
    return status


def _report(src, dst, settings, images, ignored, status, processed, skipped) -> dict:
    def having(kind):
        return sorted(rel for rel, s in status.items() if s["status"] == kind)

    several = sorted(
        ({"path": rel, "faces": s["faces"]} for rel, s in status.items() if s.get("faces", 0) > 1),
        key=lambda e: e["path"],
    )
    padded = sorted(rel for rel, s in status.items() if s.get("padded"))
    unreadable = [
        {"path": rel, "error": status[rel].get("error", "")} for rel in having("unreadable")
    ]
    counts = {
        "images": len(images),
        "aligned": len(having("aligned")),
        "fallback": len(having("fallback")),
        "padded": len(padded),
        "no_face": len(having("no_face")),
        "several_faces": len(several),
        "unreadable": len(unreadable),
        "ignored_files": len(ignored),
        "processed_this_run": processed,
        "skipped_already_done": skipped,
    }
    return {
        "src": str(src),
        "dst": str(dst),
        "settings": settings,
        "counts": counts,
        "no_face": having("no_face"),
        "several_faces": several,
        "unreadable": unreadable,
        "fallback": having("fallback"),
        "padded": padded,
        "ignored_files": ignored,
    }


def _write_report(path: Path, report: dict) -> None:
    """Atomically; a failure (disk full) is one line, `cannot write PATH (reason)`."""
    from ..outputs import write_file

    write_file(path, lambda f: f.write((json.dumps(report, indent=2) + "\n").encode()))
