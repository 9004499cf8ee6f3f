"""The people library's settings, kept in its gallery file's meta: the threshold (squared L2)
at which a face joins a person and two faces open a cluster, and the smallest cluster.

The threshold follows the gallery unless the user set one: the gallery's own identification
threshold where it has one (`facenet gallery calibrate` / `set-threshold`), else its model's
verification threshold, recorded on first use (the model in use then: a calibrated copy's when
the library was first opened with one). Distances of another model have another scale, so a
switch to another model (`facenet gallery migrate`) moves a followed threshold to the new
model's, and puts a set one aside (chosen on the old model's distances): the library then
follows the new model, the migration report says so, and a rollback restores it. See
docs/recognition.md ("People library").

Meta keys: `people_threshold` (the set threshold, or the model's threshold it follows),
`people_threshold_source` ("set" or "derived"; absent in files written before it was kept,
decided on open: `_legacy`), `people_min_faces`; `previous_people_threshold(_source)` are the
ones a switch put aside, for a rollback.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import LibraryError
from ..metadata import as_float

THRESHOLD, SOURCE, MIN_FACES = "people_threshold", "people_threshold_source", "people_min_faces"
PREVIOUS, PREVIOUS_SOURCE = "previous_people_threshold", "previous_people_threshold_source"
SET, DERIVED = "set", "derived"
DEFAULT_MIN_FACES = 2
#: What a recorded setting must be, and the option of `facenet library settings` that sets it.
RULES = {
    THRESHOLD: ("a people threshold must be in (0, 4]", "--threshold T"),
    MIN_FACES: ("min_faces must be an integer of at least 2", "--min-faces N"),
}

#: How each source of the threshold in use is described (`Settings.describe`).
SOURCES = {
    "set": "set for this library",
    "gallery": "the gallery's own threshold (facenet gallery calibrate / set-threshold)",
    "model": "the model's verification threshold",
    "session": "given for this session only; not recorded",
    "recorded": "recorded by an older facenet; its origin is decided when opened with its model",
}


@dataclass(frozen=True)
class Settings:
    """The settings in use: threshold and where it comes from (a key of `SOURCES`), min_faces,
    and the threshold the library follows when none is set (None: unknown without the model).
    An invalid recorded threshold, being repaired, is NaN, an invalid min_faces None."""

    threshold: float
    source: str
    min_faces: int | None
    follows: float | None

    def to_dict(self) -> dict:
        """JSON-ready fields (an invalid recorded threshold, being repaired, is null: JSON has
        no NaN)."""
        return {
            **asdict(self),
            "threshold": _valid(self.threshold),
            "follows": _valid(self.follows),
        }

    def describe(self) -> list[str]:
        """Two lines for people: the threshold and its origin, and min_faces."""
        line = f"threshold {self.threshold:.4f}: {SOURCES[self.source]}"
        if self.source in ("set", "session", "recorded") and self.follows is not None:
            line += f" (following the gallery it would be {self.follows:.4f})"
        return [line, f"min_faces {'invalid' if self.min_faces is None else self.min_faces}"]


def check(path: Path, threshold, min_faces) -> tuple[float, int]:
    """(threshold, min_faces) checked: a number in (0, 4] and an integer of at least 2. The
    LibraryError names only the bad one: callers pass a valid stand-in for one not given, and
    "got 1.0 and 1" blamed a threshold the user never gave."""
    value, count = as_float(threshold), as_float(min_faces)
    bad_threshold = not 0 < value <= 4  # NaN too
    bad_count = not (count >= 2 and count.is_integer())
    if bad_threshold and bad_count:
        raise LibraryError(
            f"{path}: people threshold must be in (0, 4] and min_faces an integer of at least 2 "
            f"(got {threshold!r} and {min_faces!r})"
        )
    if bad_threshold:
        raise LibraryError(f"{path}: people threshold must be in (0, 4] (got {threshold!r})")
    if bad_count:
        raise LibraryError(
            f"{path}: min_faces must be an integer of at least 2 (got {min_faces!r})"
        )
    return value, int(count)


def check_meta(path: Path, meta: dict, replacing=()) -> None:
    """A LibraryError naming the repair (`facenet library settings`) when `meta` records an
    invalid threshold or min_faces (by hand, or an older facenet) that is not among the keys
    `replacing` replaces: without it, every open would stop with no way out."""
    bad = [
        key for key, valid in ((THRESHOLD, _valid), (MIN_FACES, _count))
        if key in meta and key not in replacing and valid(meta[key]) is None
    ]  # fmt: skip
    if not bad:
        return
    got = " and ".join(f"{key.removeprefix('people_')} {meta[key]!r}" for key in bad)
    rules = ", ".join(RULES[key][0] for key in bad)
    fix = " ".join(RULES[key][1] for key in bad)
    fix += " (or --from-model)" if THRESHOLD in bad else ""
    verb, one = ("is", "a valid one") if len(bad) == 1 else ("are", "valid ones")
    raise LibraryError(
        f"{path}: its recorded people {got} {verb} invalid ({rules}); set {one}: "
        f"facenet library settings {path} {fix}"
    )


def resolve(gallery, threshold=None, min_faces=None, *, repair=False) -> tuple[Settings, dict]:
    """The settings a library on `gallery` uses, and the meta values to record: all three on
    first use (a `threshold` given then is set), a legacy file's source once decided. Given on
    a later open, `threshold` and `min_faces` hold for the session only. LibraryError for a bad
    value, given, or recorded and not replaced by one given (naming the repair: `check_meta`);
    `repair`: a bad recorded threshold reads NaN and a bad min_faces None instead (the library
    is opened to record valid ones, `Library.configure`)."""
    meta = gallery._store.meta()
    first = THRESHOLD not in meta
    given = [k for k, v in ((THRESHOLD, threshold), (MIN_FACES, min_faces)) if v is not None]
    if not repair:
        check_meta(gallery.path, meta, given)
    count = _count(meta.get(MIN_FACES, DEFAULT_MIN_FACES))
    if min_faces is not None:  # (shown beside the recorded threshold, or the one given)
        shown = (_valid(meta.get(THRESHOLD)) or 1.0) if threshold is None else threshold
        count = check(gallery.path, shown, min_faces)[1]
    writes: dict = {}
    if first:
        source = DERIVED if threshold is None else SET
        value = model_threshold(gallery, meta) if threshold is None else threshold
        value = check(gallery.path, value, count or DEFAULT_MIN_FACES)[0]
        writes = {THRESHOLD: value, SOURCE: source}
        if count is not None:  # (an invalid one, being repaired, is left to the repair)
            writes[MIN_FACES] = count
        meta = {**meta, **writes}
    elif meta.get(SOURCE) not in (SET, DERIVED):
        decided = _legacy(meta, gallery.model)
        if decided is not None:
            writes = {SOURCE: decided[0], THRESHOLD: decided[1]}
            meta = {**meta, **writes}
    settings = current(gallery, meta, count)
    if threshold is not None and not first:
        value = check(gallery.path, threshold, count or DEFAULT_MIN_FACES)[0]
        settings = Settings(value, "session", count, settings.follows)
    return settings, writes


def current(gallery, meta: dict, min_faces: int | None) -> Settings:
    """The settings `meta` (the file's, with writes pending) records, on `gallery` (a bad
    recorded threshold, which a session's own replaces, reads as NaN)."""
    calibrated, source = gallery.calibrated_threshold, meta.get(SOURCE)
    recorded = _number(meta[THRESHOLD])
    if source == DERIVED:
        if calibrated is not None:
            return Settings(calibrated, "gallery", min_faces, calibrated)
        return Settings(math.nan if recorded is None else recorded, "model", min_faces, recorded)
    try:
        follows = calibrated if calibrated is not None else model_threshold(gallery, meta, None)
    except (LibraryError, ValueError):
        follows = None
    named = SET if source == SET else "recorded"
    return Settings(math.nan if recorded is None else recorded, named, min_faces, follows)


def model_threshold(gallery, meta: dict, fallback: object = "stored") -> float:
    """The model's verification threshold a library follows: the model in use (a calibrated
    copy's when it is one), else the one the gallery recorded (on a migration), else the one the
    library recorded while following it; else `fallback` ("stored": the gallery's recorded
    identification threshold, as first use always did), or LibraryError when it is None."""
    if gallery.model is not None:
        return float(gallery.model.info.verification_threshold)
    if meta.get("verification_threshold"):
        return float(meta["verification_threshold"])
    if meta.get(SOURCE) == DERIVED and _valid(meta.get(THRESHOLD)) is not None:
        return float(meta[THRESHOLD])
    if fallback == "stored":
        return float(gallery._stored_threshold)
    raise LibraryError(
        f"{gallery.path}: the gallery does not record its model's verification threshold; "
        "open the library with its model to follow it"
    )


def _legacy(meta: dict, model) -> tuple[str, float] | None:
    """(source, threshold to record) for a file that recorded its threshold before it recorded
    where it came from: derived when it equals what would be derived now (the gallery's own
    threshold, else the model's), or the previous model's threshold after a switch (a migration
    left it behind before switches moved it); else set. None when that needs the model."""
    recorded = _number(meta[THRESHOLD])
    if recorded is None:  # a bad one: refused, unless a session gives its own
        return None
    if model is not None:
        current_model = float(model.info.verification_threshold)
    else:
        current_model = _number(meta.get("verification_threshold"))
    calibrated = _number(meta.get("calibrated_threshold"))
    now = calibrated if calibrated is not None else current_model
    if now is None:
        return None
    if _close(recorded, now):
        return DERIVED, recorded if current_model is None else current_model
    stale = (meta.get(f"previous_{k}") for k in ("verification_threshold", "threshold"))
    if current_model is not None and any(_close(recorded, v) for v in map(_number, stale) if v):
        return DERIVED, current_model
    return SET, recorded


def switch(meta: dict, target, calibrated: float | None) -> tuple[dict, dict | None]:
    """The meta values for the library when its gallery (`meta`) switches to `target` (a
    `facenet.gallery.migrate.Target`), with the gallery's own threshold `calibrated` after the
    switch, and what changes for the migration report; ({}, None) without a library or when
    the model stays (a retry of flagged faces). The threshold in use is put aside; a rollback
    restores the one put aside, any other switch follows the new model."""
    if THRESHOLD not in meta or meta["model_id"] == target.model_id:
        return {}, None
    source, recorded = meta.get(SOURCE), _number(meta[THRESHOLD])
    if source not in (SET, DERIVED):  # an older file, switching: its model's threshold or set
        known = (meta.get(k) for k in ("verification_threshold", "threshold"))
        close = any(_close(recorded or math.nan, v) for v in map(_number, known) if v)
        source = DERIVED if close else SET
    values = {PREVIOUS: meta[THRESHOLD], PREVIOUS_SOURCE: source}
    if target.model_id == meta.get("previous_model_id") and _number(meta.get(PREVIOUS)):
        new = (float(meta[PREVIOUS]), meta.get(PREVIOUS_SOURCE) or SET)
    else:
        new = (float(target.verification_threshold or target.threshold), DERIVED)
    values.update({THRESHOLD: new[0], SOURCE: new[1]})
    return values, _change(meta, source, new, calibrated)


def _change(meta: dict, old_source: str, new: tuple[float, str], calibrated) -> dict:
    """What a switch does to the library's threshold, with a note for the migration report."""
    gallery_own = _number(meta.get("calibrated_threshold"))
    recorded = _number(meta[THRESHOLD]) or math.nan  # (a bad one: the library refuses it)
    old = recorded if old_source == SET or gallery_own is None else gallery_own
    value = new[0] if new[1] == SET or calibrated is None else float(calibrated)
    if old_source == SET and new[1] == DERIVED:
        note = (
            f"people library: its threshold {old:.4f} was set on the old model's distances; "
            f"put aside (switching back restores it); it follows the new model now: {value:.4f}"
        )
    elif new[1] == SET:
        note = f"people library: its threshold set for this model is restored: {value:.4f}"
    else:
        note = f"people library: threshold {old:.4f} -> {value:.4f} (it follows the model)"
    note += (
        "; `facenet library recluster` regroups the unnamed clusters at it, "
        "`facenet library settings` shows or sets it"
    )
    source = "set" if new[1] == SET else ("model" if calibrated is None else "gallery")
    return {"old_threshold": old, "threshold": value, "source": source, "note": note}


def _number(value) -> float | None:
    """A meta value as a float; None when absent or empty."""
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _valid(value) -> float | None:
    """A meta value as a threshold in (0, 4]; None when it is none."""
    number = _number(value)
    return number if number is not None and 0 < number <= 4 else None


def _count(value) -> int | None:
    """A meta value as a min_faces (an integer of at least 2); None when it is none."""
    number = _number(value)
    return int(number) if number is not None and number >= 2 and number.is_integer() else None


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
