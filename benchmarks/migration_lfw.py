"""Moving an LFW gallery to another model: the dry-run report, and held-out identification
accuracy before and after the switch (then a rollback, checked exact).

The gallery: the first N LFW people (alphabetically) with at least 4 photos; photos 1-2 of each
are copied under the work folder and enrolled from it (`enroll_folder`), with one merge (the
first person's second photo enrolled under an alias, then merged back), one rename (the second
person), one removed face (the third person's second photo), and one photo deleted before the
migration (the fourth person's first: re-embedded from the gallery's stored crop). Probes:
photos 3 and 4 of each person, never enrolled. rank-1: the probe's nearest person is its own;
identified: rank-1 and within the gallery's threshold.

    python benchmarks/migration_lfw.py --old facenet-mobilenet --new dlib-resnet [--people 30]
        [--calibrate 0.01] [--json]

(--old / --new take model names or model files.) The test tests/test_gallery_migrate_lfw.py
builds the same gallery with these functions.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lfw_common import DEFAULT_LFW, people  # noqa: E402

ALIAS = "Alias of "
RENAMED = " (renamed)"


def choose(lfw: Path, count: int) -> dict[str, list[Path]]:
    """The first `count` people with at least 4 photos: name -> their photos."""
    chosen = dict(list(people(lfw, min_images=4).items())[:count])
    if len(chosen) < max(count, 4):
        raise SystemExit(f"{lfw}: fewer than {max(count, 4)} people with 4 photos")
    return chosen


def build(workdir: Path, chosen: dict[str, list[Path]], model, model_path: str = "") -> dict:
    """Create and enrol the gallery (see module doc). Returns {"gallery": path, "probes":
    [(expected gallery name, photo)], "names": LFW name -> gallery name}."""
    from facenet.gallery import Gallery

    names = list(chosen)
    tree = workdir / "photos"
    for i, (name, files) in enumerate(chosen.items()):
        for j, src in enumerate(files[:2]):
            folder = ALIAS + name if (i == 0 and j == 1) else name
            (tree / folder).mkdir(parents=True, exist_ok=True)
            shutil.copy(src, tree / folder / src.name)
    path = workdir / "gallery.db"
    with Gallery.create(path, model, model_path=model_path) as g:
        g.enroll_folder(tree, progress=False)
        g.merge(ALIAS + names[0], names[0])
        g.rename(names[1], names[1] + RENAMED)
        third = [f for f in g.faces(names[2]) if f.source.endswith("_0002.jpg")]
        g.remove_face(third[0].id)
    (tree / names[3] / chosen[names[3]][0].name).unlink()
    mapping = {n: n + RENAMED if i == 1 else n for i, n in enumerate(names)}
    probes = [(mapping[n], f) for n, files in chosen.items() for f in files[2:4]]
    return {"gallery": path, "probes": probes, "names": mapping}


def answers(gallery, probes) -> list[tuple[str, float | None]]:
    """(name, distance) of the most prominent face of each probe photo ("-" when none)."""
    from facenet.gallery import most_prominent
    from facenet.images import load_image

    out = []
    for _, photo in probes:
        image = load_image(photo)
        faces = gallery.identify(image, k=1)
        if not faces:
            out.append(("-", None))
            continue
        best = most_prominent([f.face for f in faces], image.shape)
        face = next(f for f in faces if f.face is best)
        out.append((face.matches[0].name if face.matches else "-", face.distance))
    return out


def accuracy(gallery, probes) -> dict:
    """rank-1 and identified shares of the probes, and the raw answers."""
    found = answers(gallery, probes)
    rank1 = [name == expected for (expected, _), (name, _d) in zip(probes, found, strict=True)]
    within = [
        ok and d is not None and d <= gallery.threshold
        for ok, (_n, d) in zip(rank1, found, strict=True)
    ]
    return {
        "rank1": sum(rank1) / len(probes),
        "identified": sum(within) / len(probes),
        "threshold": gallery.threshold,
        "answers": found,
    }


def snapshot(path: Path) -> list[tuple]:
    """People, names, metadata and face ownership: what a migration must keep."""
    from facenet.gallery import Gallery

    with Gallery.open(path) as g:
        return [(p.name, p.metadata, tuple(f.id for f in g.faces(p.name))) for p in g.people()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", default="facenet-mobilenet", help="Model name or file enrolled with.")
    ap.add_argument("--new", default="dlib-resnet", help="Model name or file migrated to.")
    ap.add_argument("--people", type=int, default=30)
    ap.add_argument("--lfw", type=Path, default=DEFAULT_LFW)
    ap.add_argument("--workdir", type=Path, default=None, help="Kept when given.")
    ap.add_argument(
        "--calibrate", type=float, default=None, metavar="FAR",
        help="Calibrate the gallery first (facenet gallery calibrate --far FAR): the report then "
        "gives the new model's transferred identification threshold.",
    )  # fmt: skip
    ap.add_argument("--json", action="store_true", help="Print the results as JSON too.")
    args = ap.parse_args()

    from facenet import FaceNet
    from facenet.errors import GalleryError
    from facenet.gallery import Gallery
    from facenet.gallery import migrate as m

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="migration-lfw-"))
    try:
        old, new = FaceNet.load(args.old), FaceNet.load(args.new)
        setup = build(workdir, choose(args.lfw, args.people), old, args.old)
        path, probes = setup["gallery"], setup["probes"]
        kept = snapshot(path)
        with Gallery.open(path, old) as g:
            if args.calibrate is not None:
                try:
                    g.calibrate(args.calibrate)
                except GalleryError as exc:
                    raise SystemExit(f"--calibrate: {exc}") from None
            before = accuracy(g, probes)
        report = m.migrate(path, m.Target.of(new, args.new), dry_run=True)
        print("\n".join(report.lines()))
        m.migrate(path, m.Target.of(new, args.new))
        with Gallery.open(path, new) as g:
            after = accuracy(g, probes)
        m.rollback(path)
        with Gallery.open(path, old) as g:
            exact = answers(g, probes) == before["answers"]
        results = {
            "people": args.people, "probes": len(probes), "old": args.old, "new": args.new,
            "calibrated_far": args.calibrate,
            "report": report.summary(), "kept": snapshot(path) == kept, "rollback_exact": exact,
            **{f"{k}_before": before[k] for k in ("rank1", "identified", "threshold")},
            **{f"{k}_after": after[k] for k in ("rank1", "identified", "threshold")},
        }  # fmt: skip
        for when, r in (("before", before), ("after", after)):
            print(f"{when}: rank-1 {r['rank1']:.1%}, identified {r['identified']:.1%} "
                  f"(threshold {r['threshold']:.4f}) on {len(probes)} held-out photos")  # fmt: skip
        print(f"people, names, merges, removals kept: {results['kept']}; rollback exact: {exact}")
        if args.json:
            print(json.dumps(results))
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
