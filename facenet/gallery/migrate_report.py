"""What a model switch would change on the gallery's own faces, measured before switching.

On the faces that have both an active and a new embedding:
- faces whose nearest person changes (the person of the nearest *other* face, old vs new);
- candidate wrong merges: people whose faces fall apart under the new model (the graph of their
  faces joined within the new model's verification threshold has more than one component);
- candidate duplicates: pairs of people with faces closer than the threshold identification
  will use (the new model's open-set threshold, or the transferred calibration below): a face
  of one would be named as the other (among each face's `NEIGHBOURS` nearest faces). Pairs
  within the verification threshold are too many to mean anything on a gallery: at ~1% false
  accepts per pair, 30 LFW people already give ~15 such pairs with dlib's ResNet;
- the new identification threshold, when the gallery was calibrated (`facenet gallery
  calibrate`, meta `calibrated_threshold`): the new model's distance letting in the same share
  of the gallery's own "strangers" (each face against other people's faces, as the calibration
  counts them) as the calibrated threshold did with the old model.
It also lists the faces re-embedded from their stored crop (photo moved, gone or changed) and
the faces that could not be re-embedded (kept on the old model, flagged).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .index import FaceIndex

#: Neighbours examined per face for the nearest person and duplicate candidates.
NEIGHBOURS = 16
#: People with more faces than this are not checked for a wrong merge (quadratic cost).
MAX_PERSON_FACES = 2000


@dataclass
class MigrationReport:
    """The report of a migration (or a dry run); `summary()` is what the CLI prints first."""

    old_model: str
    new_model: str
    faces: int
    compared: int
    #: Verification (pair) thresholds: whether two faces agree, for merges and duplicates.
    old_threshold: float
    new_threshold: float
    #: Open-set thresholds: what identification decides with, before and after.
    old_open_set_threshold: float
    new_open_set_threshold: float
    nearest_changed: list[dict] = field(default_factory=list)
    wrong_merges: list[dict] = field(default_factory=list)
    duplicates: list[dict] = field(default_factory=list)
    from_crop: list[dict] = field(default_factory=list)
    flagged: list[dict] = field(default_factory=list)
    new_identification_threshold: float | None = None
    #: A people library's threshold, before and after (`facenet.people.settings.switch`), and
    #: its note; None when the gallery holds no library.
    people_library: dict | None = None

    def summary(self) -> dict:
        return {
            "old_model": self.old_model,
            "new_model": self.new_model,
            "faces": self.faces,
            "compared": self.compared,
            "nearest_person_changed": len(self.nearest_changed),
            "candidate_wrong_merges": len(self.wrong_merges),
            "candidate_duplicates": len(self.duplicates),
            "reembedded_from_crop": len(self.from_crop),
            "flagged": len(self.flagged),
            "old_threshold": self.old_threshold,
            "new_threshold": self.new_threshold,
            "old_open_set_threshold": self.old_open_set_threshold,
            "new_open_set_threshold": self.new_open_set_threshold,
            "new_identification_threshold": self.new_identification_threshold,
        }

    def to_dict(self) -> dict:
        return {
            **self.summary(),
            "nearest_changed": self.nearest_changed,
            "wrong_merges": self.wrong_merges,
            "duplicates": self.duplicates,
            "from_crop": self.from_crop,
            "flagged_faces": self.flagged,
            "people_library": self.people_library,
        }

    def lines(self) -> list[str]:
        """Human-readable report, most important first."""
        s = self.summary()
        out = [
            f"{s['old_model']} -> {s['new_model']}: {s['faces']} faces, {s['compared']} compared",
            f"nearest person changes for {s['nearest_person_changed']} faces",
            f"candidate wrong merges: {s['candidate_wrong_merges']} people",
            f"candidate duplicates: {s['candidate_duplicates']} pairs of people",
            f"re-embedded from the stored crop: {s['reembedded_from_crop']} faces; "
            f"flagged (kept on the old model): {s['flagged']} faces",
            f"verification threshold {s['old_threshold']:.4f} -> {s['new_threshold']:.4f}; "
            f"identification threshold {s['old_open_set_threshold']:.4f} -> "
            f"{s['new_open_set_threshold']:.4f}",
        ]
        if self.new_identification_threshold is not None:
            out.append(f"new identification threshold: {self.new_identification_threshold:.4f}")
        if self.people_library is not None:
            out.append(self.people_library["note"])
        out += [f"  merge? {m['person']}: {m['groups']} groups" for m in self.wrong_merges[:20]]
        out += [
            f"  duplicate? {d['people'][0]} / {d['people'][1]}: {d['distance']:.4f}"
            for d in self.duplicates[:20]
        ]
        out += [f"  from crop: face #{f['face_id']} ({f['note']})" for f in self.from_crop[:20]]
        out += [f"  flagged: face #{f['face_id']} ({f['note']})" for f in self.flagged[:20]]
        return out


def build_report(store, target) -> MigrationReport:
    """The report for moving `store`'s gallery to `target` (whose embeddings are all made),
    with what the switch would do to a people library's threshold."""
    from ..people.settings import switch

    meta = store.meta()
    report = _measure(store, target, meta)
    calibrated = report.new_identification_threshold
    if meta.get("previous_model_id") == target.model_id:  # a rollback restores it exactly
        calibrated = meta.get("previous_calibrated_threshold")
    report.people_library = switch(meta, target, calibrated)[1]
    return report


def _measure(store, target, meta: dict) -> MigrationReport:
    """The faces' part of the report."""
    rows = store.db.execute(
        "SELECT f.id, f.person_id, p.name, f.model_id, f.embedding, e.embedding AS new, "
        "e.origin, e.note FROM faces f JOIN people p ON p.id = f.person_id "
        "LEFT JOIN face_embeddings e ON e.face_id = f.id AND e.model_id = ? ORDER BY f.id",
        (target.model_id,),
    ).fetchall()
    active = meta["model_id"]
    both = [r for r in rows if r["model_id"] == active and r["new"] is not None]
    report = MigrationReport(
        old_model=meta.get("model_name", "") or active,
        new_model=target.name or target.model_id,
        faces=len(rows),
        compared=len(both),
        old_threshold=float(meta.get("verification_threshold") or meta.get("threshold", "nan")),
        new_threshold=float(target.verification_threshold or target.threshold),
        old_open_set_threshold=float(meta.get("threshold", "nan")),
        new_open_set_threshold=float(target.threshold),
    )
    for r in rows:
        item = {"face_id": r["id"], "person": r["name"], "note": r["note"]}
        if r["origin"] == "crop":
            report.from_crop.append(item)
        elif r["origin"] == "unavailable":
            report.flagged.append(item)
    if len(both) < 2:
        return report
    ids = np.array([r["id"] for r in both], np.int64)
    people = np.array([r["person_id"] for r in both], np.int64)
    names = {r["person_id"]: r["name"] for r in both}
    old = _matrix([r["embedding"] for r in both])
    new = _matrix([r["new"] for r in both])
    old_knn, new_knn = _knn(old), _knn(new)
    old_near, old_impostor = _neighbours(old_knn, people)
    new_near, new_impostor = _neighbours(new_knn, people)
    for i in np.flatnonzero(old_near != new_near):
        report.nearest_changed.append(
            {"face_id": int(ids[i]), "person": names[int(people[i])],
             "old_nearest": names.get(int(old_near[i])), "new_nearest": names.get(int(new_near[i]))}
        )  # fmt: skip
    report.wrong_merges = _split_people(new, old, people, names, report)
    calibrated = meta.get("calibrated_threshold")
    if calibrated is not None:
        report.new_identification_threshold = transfer_threshold(
            old_impostor, new_impostor, float(calibrated)
        )
    identify_at = report.new_identification_threshold or report.new_open_set_threshold
    report.duplicates = _duplicates(new_knn, people, names, identify_at)
    return report


def transfer_threshold(old_impostor: np.ndarray, new_impostor: np.ndarray, old: float) -> float:
    """The new model's threshold letting in the same share of strangers as `old` did (each
    face's nearest face of another person plays a stranger probe; `threshold_at_far`, as
    `facenet gallery calibrate` chooses)."""
    from ..evaluate.openset import threshold_at_far

    if not np.isfinite(new_impostor).any():
        return float(old)
    rate = float(np.mean(old_impostor <= old))
    return threshold_at_far(new_impostor, min(rate, 0.999))


def _matrix(blobs: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(blobs), np.float32).reshape(len(blobs), -1)


def _knn(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distances, row numbers) of each row's NEIGHBOURS + 1 nearest rows (itself included)."""
    n = len(vectors)
    index = FaceIndex.build(vectors, np.arange(n, dtype=np.int64), vectors.shape[1])
    return index.search(vectors, min(n, NEIGHBOURS + 1))


def _neighbours(knn, people: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the nearest other face's person, the distance to the nearest face of another person)
    per face, among NEIGHBOURS candidates (-1 and inf when none is found)."""
    distances, found = knn
    n = len(people)
    nearest = np.full(n, -1, np.int64)
    impostor = np.full(n, np.inf)
    for i in range(n):
        for d, j in zip(distances[i], found[i], strict=True):
            if j < 0 or j == i:
                continue
            if nearest[i] < 0:
                nearest[i] = people[j]
            if people[j] != people[i]:
                impostor[i] = d
                break
    return nearest, impostor


def _groups(vectors: np.ndarray, threshold: float) -> int:
    """Connected components of faces joined when within `threshold` (squared L2)."""
    d = np.sum((vectors[:, None, :] - vectors[None, :, :]) ** 2, axis=2)
    parent = list(range(len(vectors)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(d <= threshold, 1)), strict=True):
        parent[root(int(i))] = root(int(j))
    return len({root(i) for i in range(len(vectors))})


def _split_people(new, old, people, names, report: MigrationReport) -> list[dict]:
    out = []
    for person in np.unique(people):
        members = np.flatnonzero(people == person)
        if len(members) < 2 or len(members) > MAX_PERSON_FACES:
            continue
        groups = _groups(new[members], report.new_threshold)
        if groups > 1:
            before = _groups(old[members], report.old_threshold)
            out.append(
                {"person": names[int(person)], "faces": len(members), "groups": groups,
                 "groups_before": before}
            )  # fmt: skip
    return out


def _duplicates(knn, people, names, threshold: float) -> list[dict]:
    distances, found = knn
    pairs: dict[tuple[int, int], float] = {}
    for i in range(len(people)):
        for d, j in zip(distances[i], found[i], strict=True):
            if j < 0 or d > threshold or people[j] == people[i]:
                continue
            key = tuple(sorted((int(people[i]), int(people[j]))))
            pairs[key] = min(pairs.get(key, np.inf), float(d))
    return [
        {"people": [names[a], names[b]], "distance": round(d, 5)}
        for (a, b), d in sorted(pairs.items(), key=lambda kv: kv[1])
    ]
