"""`facenet cluster`'s work: embed every face of some photos, cluster them, and write one folder
of face crops per cluster, clusters.json and an HTML contact sheet."""

from __future__ import annotations

import html
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import FaceNetError, ImageError
from ..images import IMAGE_SUFFIXES, ImageInput, load_image, require_utf8_path
from ..metadata import check_choice
from ..outputs import check_output_folder, make_folder, writing
from ..text import plural
from . import METHODS, NOISE, cluster

log = logging.getLogger(__name__)


@dataclass
class ClusterReport:
    """What `cluster_photos` wrote; `rows` holds one dict per photo (its faces and their
    clusters, or its error), in input order: the `--json` lines."""

    out: Path
    clusters: int
    faces: int
    noise: int
    photos: int
    no_face: list[str]
    unreadable: list[str]
    rows: list[dict]

    def summary(self) -> str:
        wrote = f"wrote {self.out / 'index.html'}" if self.faces else "nothing written"
        return (
            f"{plural(self.faces, 'face')} from {plural(self.photos, 'photo')} -> "
            f"{plural(self.clusters, 'cluster')} ({self.noise} unclustered); "
            f"{plural(len(self.no_face), 'photo')} without a face, {len(self.unreadable)} "
            f"unreadable; {wrote}"
        )


def find_photos(
    inputs: Iterable[str | os.PathLike], exclude: str | os.PathLike | None = None
) -> list[Path]:
    """Files as given, and the images inside directories (recursively, sorted); a directory
    without images stays in the list, so that it is reported rather than silently dropped.
    Below a directory, `exclude` (the --out folder) and earlier outputs of `cluster_photos`
    (see `_is_cluster_output`) are skipped: their face crops are not photos."""
    photos: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(_walk_photos(path, exclude))
            photos.extend(found or [path])
        else:
            photos.append(path)
    return photos


def _walk_photos(folder: Path, exclude: str | os.PathLike | None) -> Iterable[Path]:
    """The image files under `folder`, not entering a folder `_is_cluster_output` names."""
    skip = Path(exclude).absolute() if exclude is not None else None
    for parent, folders, files in os.walk(folder):
        here = Path(parent)
        folders[:] = [f for f in folders if not _is_cluster_output(here / f, skip)]
        found = (here / f for f in files)
        yield from (p for p in found if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _is_cluster_output(folder: Path, out: Path | None) -> bool:
    """Whether `folder` is the --out folder, an earlier output (clusters.json and index.html)
    or the hidden work folder of a run that was killed (`.NAME.tmp-XXXXXXXX`)."""
    if out is not None and folder.absolute() == out:
        return True
    if (folder / "clusters.json").is_file() and (folder / "index.html").is_file():
        return True
    return re.fullmatch(r"\..+\.tmp-[0-9a-f]{8}", folder.name) is not None


def cluster_photos(
    model,
    photos: Sequence[ImageInput],
    out: str | os.PathLike,
    *,
    method: str = "agglomerative",
    threshold: float | None = None,
    min_size: int = 1,
    crop_size: int = 160,
    progress: bool = False,
) -> ClusterReport:
    """Embed every face of every photo, cluster them, and write `out/`: one folder of face
    crops per cluster (`cluster_000`, ... largest first; `noise/`), `clusters.json` and an
    `index.html` contact sheet (relative paths: the folder can be moved or zipped). All is
    written into a hidden folder beside `out`, renamed to `out` at the end: an error or Ctrl-C
    midway leaves no half-written folder that a re-run would refuse. With no face found,
    nothing is written (the report says so)."""
    check_choice("method", method, METHODS)
    out = check_output_folder(out)  # under a file, a file: refused before the embedding
    if out.is_symlink() and not out.exists():
        raise FaceNetError(f"{out}: is a broken link")
    if out.exists() and any(out.iterdir()):
        raise FaceNetError(f"{out}: output folder exists and is not empty")
    threshold = model.info.verification_threshold if threshold is None else threshold
    records, rows = _embed_photos(model, photos, crop_size, progress)
    labels = _cluster_faces(records, threshold, method, min_size)
    if records:  # no face: nothing written, so that nothing stops the re-run
        summary = _write_output(out, model, records, labels, rows, (method, threshold, min_size))
    else:
        summary = _summary(model, {}, rows, method, threshold, min_size)
    return ClusterReport(
        out=out,
        clusters=len(summary["clusters"]),
        faces=len(records),
        noise=len(summary["noise"]),
        photos=len(photos),
        no_face=summary["no_face"],
        unreadable=summary["unreadable"],
        rows=rows,
    )


def _cluster_faces(records, threshold: float, method: str, min_size: int) -> np.ndarray:
    """`cluster` on the faces embedded; running out of memory (agglomerative holds an n x n
    matrix) is a one-line error naming the way out, not a MemoryError traceback."""
    x = np.stack([r[2].embedding for r in records]) if records else np.zeros((0, 1))
    try:
        return cluster(x, threshold=threshold, method=method, min_size=min_size)
    except MemoryError:
        raise FaceNetError(
            f"not enough memory to cluster {plural(len(x), 'face')} with {method}; "
            "--method chinese_whispers or dbscan need far less"
        ) from None


def _write_output(out: Path, model, records, labels, rows, options: tuple) -> dict:
    """`_write_folder` into a hidden folder beside `out`, renamed to `out` when complete; an OS
    error (disk full, read-only) is one line, `cannot write OUT (reason)`, and leaves neither."""
    make_folder(out.parent)
    work = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with writing(out):
            summary = _write_folder(work, model, records, labels, rows, *options)
            os.replace(work, out)  # an existing `out` is empty (checked by the caller): replaced
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return summary


def _write_folder(out: Path, model, records, labels, rows, method, threshold, min_size) -> dict:
    """Write the crops, clusters.json and index.html into `out`; the summary written."""
    groups = _write_crops(out, records, labels, rows)
    summary = _summary(model, groups, rows, method, threshold, min_size)
    (out / "clusters.json").write_text(json.dumps(summary, indent=1))
    (out / "index.html").write_text(_contact_sheet(summary), encoding="utf-8")
    return summary


def _summary(model, groups: dict, rows, method, threshold, min_size) -> dict:
    """clusters.json: the options, the clusters (faces grouped by label), noise, failures."""
    return {
        "method": method,
        "threshold": threshold,
        "min_size": min_size,
        "model": {"name": getattr(model.info, "name", ""), "id": getattr(model, "model_id", "")},
        "clusters": [
            {"label": label, "size": len(items), "faces": items}
            for label, items in sorted(groups.items())
            if label != NOISE
        ],
        "noise": groups.get(NOISE, []),
        "no_face": [r["photo"] for r in rows if "error" not in r and not r["faces"]],
        "unreadable": [r["photo"] for r in rows if "error" in r],
    }


def _embed_photos(model, photos: Sequence[ImageInput], crop_size: int, progress: bool):
    """(row index, face number, Face, crop) per face found, and one row per photo."""
    from tqdm.auto import tqdm

    records, rows = [], []
    for source in tqdm(photos, unit="photo", desc="embedding", disable=not progress):
        name = str(source)
        try:
            if isinstance(source, (str, os.PathLike)):
                require_utf8_path(source)  # written into clusters.json and index.html
                if Path(source).is_dir():
                    raise ImageError(f"{source}: no photos in this folder")
            image = load_image(source)
            faces = model.represent(image)
        except ImageError as exc:
            rows.append({"photo": name, "error": str(exc)})  # the caller reports it
            log.info("%s", exc)
            continue
        rows.append({"photo": name, "faces": []})
        for number, face in enumerate(faces):
            records.append((len(rows) - 1, number, face, _crop(image, face.box, crop_size)))
    return records, rows


def _write_crops(out: Path, records, labels, rows: list[dict]) -> dict[int, list[dict]]:
    """Save each face crop in its cluster's folder; fill each row's faces; group by label."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    groups: dict[int, list[dict]] = {}
    for (row, number, face, crop), label in zip(records, labels, strict=True):
        name = rows[row]["photo"]
        folder = "noise" if label == NOISE else f"cluster_{label:03d}"
        (out / folder).mkdir(exist_ok=True)
        crop_name = f"{folder}/{len(groups.get(int(label), [])):04d}_{_slug(name)}_{number}.jpg"
        Image.fromarray(crop).save(out / crop_name, quality=90)
        item = {"photo": name, "face": number, "box": [round(float(v), 1) for v in face.box],
                "crop": crop_name}  # fmt: skip
        groups.setdefault(int(label), []).append(item)
        rows[row]["faces"].append({**item, "cluster": int(label)})
    return groups


def _crop(image: np.ndarray, box, size: int, margin: float = 0.2) -> np.ndarray:
    """The face box grown by `margin` on each side, made square, clipped, resized to <= size."""
    from PIL import Image

    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    half = max(x2 - x1, y2 - y1) * (0.5 + margin)
    h, w = image.shape[:2]
    left, top = int(max(0, cx - half)), int(max(0, cy - half))
    right, bottom = int(min(w, cx + half)), int(min(h, cy + half))
    if right <= left or bottom <= top:
        left, top, right, bottom = 0, 0, w, h
    crop = Image.fromarray(image[top:bottom, left:right])
    crop.thumbnail((size, size))
    return np.asarray(crop)


def _slug(name: str) -> str:
    stem = Path(name).stem
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)[:40] or "photo"


def _contact_sheet(summary: dict) -> str:
    def figure(item: dict) -> str:
        title = html.escape(f"{item['photo']} (face {item['face']})", quote=True)
        src = html.escape(item["crop"], quote=True)
        return f'<a href="{src}"><img src="{src}" title="{title}" alt="{title}" loading="lazy"></a>'

    sections = []
    for c in summary["clusters"]:
        figures = "".join(figure(i) for i in c["faces"])
        title = f"cluster {c['label']} <small>({plural(c['size'], 'face')})</small>"
        sections.append(f"<h2>{title}</h2>\n<div>{figures}</div>")
    if summary["noise"]:
        figures = "".join(figure(i) for i in summary["noise"])
        title = f"unclustered <small>({plural(len(summary['noise']), 'face')})</small>"
        sections.append(f"<h2>{title}</h2>\n<div>{figures}</div>")
    if summary["no_face"]:
        items = "".join(f"<li>{html.escape(p)}</li>" for p in summary["no_face"])
        sections.append(f"<h2>photos without a face</h2><ul>{items}</ul>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>facenet clusters</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; }}
img {{ width: 96px; height: 96px; object-fit: cover; margin: 2px; border-radius: 4px; }}
h2 small {{ color: #666; font-weight: normal; }}
</style></head><body>
<h1>{len(summary["clusters"])} clusters</h1>
<p>method {html.escape(summary["method"])}, threshold {summary["threshold"]:.3f},
model {html.escape(str(summary["model"]["name"]))}</p>
{chr(10).join(sections)}
</body></html>
"""
