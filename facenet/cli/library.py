"""facenet library add|recluster|settings|people|faces|name|merge|split|move|link|unlink|reject|
suggest|accept|decline|constraints: the people library (facenet.people.Library) from the shell."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import FaceNetError
from ..gallery.validation import MAX_ID
from . import UserError, model_option
from .conventions import (
    FiniteRange,
    batch_size_option,
    emit,
    finish,
    input_failed,
    json_option,
    photo_path,
    progress_option,
    want_progress,
)

library_argument = click.argument(
    "library_path", metavar="LIBRARY", type=click.Path(dir_okay=False)
)


#: A person or face id (the gallery's range)
ID = click.IntRange(1, MAX_ID)


def open_library(
    path: str, model_path: str | None = None, *, with_model: bool = False, repair: bool = False
):
    """The library at `path`; with_model loads --model (or the one the file records), and a
    missing file is created for it; `repair`: opened although its recorded threshold or
    min_faces is invalid, to set a valid one (`settings`)."""
    from ..people import Library

    if not with_model:
        return Library.open(path, create=False, repair=repair)
    if not Path(path).exists():
        from .gallery import load_model

        return Library.open(path, load_model(model_path))
    from .gallery import open_gallery

    gallery = open_gallery(path, model_path, with_model=True)
    try:
        return Library.from_gallery(gallery, repair=repair)
    except BaseException:
        gallery.close()
        raise


def photo_files(inputs: tuple[str, ...]) -> list[str]:
    """The photos named: files as given, folders searched recursively for images (sorted)."""
    from ..images import IMAGE_SUFFIXES

    out: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = (p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            out.extend(str(p) for p in sorted(found) if p.is_file())
        else:
            out.append(item)
    return out


@click.group()
def library() -> None:
    """The people of a photo collection: add photos, then correct; corrections stick."""


@library.command()
@library_argument
@click.argument("photos", nargs=-1, type=photo_path())
@model_option
@batch_size_option(16)
@progress_option
@json_option
def add(library_path, photos, model_path, batch_size, progress, as_json):
    """Add photos (files or folders): store every face and place it with a person, in a new
    cluster, or nowhere yet (the unnamed, uncorrected clusters near the new faces are regrouped
    with them). Creates LIBRARY if missing. Photos already added are skipped;
    unreadable ones are listed (exit status 1; 2 when none could be added)."""
    files = photo_files(photos)
    if not files:
        raise click.UsageError("no photos given (files or folders of images)")
    with open_library(library_path, model_path, with_model=True) as lib:
        report = lib.add(files, batch_size=batch_size, progress=want_progress(progress))
    failed: list[str] = []
    for source, error in report.failed:
        input_failed(source, FaceNetError(error), as_json, failed)
    if as_json:
        emit(report.to_dict())
    click.echo(report.summary(), err=True)
    finish(report.photos + len(report.duplicates), failed, "photo")


@library.command()
@library_argument
@json_option
def recluster(library_path, as_json):
    """Re-cluster the unassigned faces and the unnamed clusters, honouring every correction."""
    with open_library(library_path) as lib:
        report = lib.recluster()
    if as_json:
        emit(report.to_dict())
    click.echo(report.summary(), err=as_json)


@library.command()
@library_argument
@click.option(
    "--threshold", type=FiniteRange(0, 4, min_open=True), default=None, metavar="T",
    help="Set the library's own threshold (squared L2, in (0, 4]); a migration of the gallery "
    "to another model puts it aside.",
)  # fmt: skip
@click.option(
    "--from-model", is_flag=True,
    help="Follow the gallery again: its own threshold, else its model's verification threshold "
    "(of --model, else the recorded model).",
)  # fmt: skip
@click.option("--min-faces", type=click.IntRange(min=2), default=None, metavar="N",
              help="The smallest cluster (at least 2).")  # fmt: skip
@model_option
@json_option
def settings(library_path, threshold, from_model, min_faces, model_path, as_json):
    """Show the library's threshold (and where it comes from) and min_faces; with options,
    change them for every later session. Later adds use them at once; `facenet library
    recluster LIBRARY` applies them to the existing clusters."""
    if threshold is not None and from_model:
        raise UserError("give --threshold or --from-model, not both")
    change = threshold is not None or from_model or min_faces is not None
    with_model = from_model and Path(library_path).exists()  # (a missing file: the error)
    repair = change  # a bad recorded setting is replaced (`configure` refuses to keep one)
    with open_library(library_path, model_path, with_model=with_model, repair=repair) as lib:
        before = lib.settings()
        now = lib.configure(threshold=threshold, from_model=from_model, min_faces=min_faces)
    if as_json:
        emit({**now.to_dict(), **({"was": before.to_dict()} if change else {})})
    else:
        for line in now.describe():
            click.echo(line)
    if change:
        old, count = before.to_dict()["threshold"], before.min_faces
        old = "an invalid threshold" if old is None else f"threshold {old:.4f}"
        was = f"{old}, " + ("an invalid min_faces" if count is None else f"min_faces {count}")
        click.echo(
            f"was {was}; later adds use the new settings, `facenet library recluster "
            f"{library_path}` applies them to the existing clusters",
            err=True,
        )


@library.command()
@library_argument
@click.option("--named/--unnamed", default=None, help="Only named people / only clusters.")
@json_option
def people(library_path, named, as_json):
    """List people and clusters: id, faces, name (clusters have none)."""
    with open_library(library_path) as lib:
        found = lib.people(named=named)
    for p in found:
        if as_json:
            emit(p.to_dict())
        else:
            click.echo(f"{p.id}\t{p.face_count}\t{p.name or '(unnamed cluster)'}")


@library.command()
@library_argument
@click.argument("person", type=ID, required=False)
@click.option("--unassigned", is_flag=True, help="Only the faces of nobody.")
@json_option
def faces(library_path, person, unassigned, as_json):
    """List faces (of PERSON, or unassigned, or all): id, state, person, quality, photo."""
    with open_library(library_path) as lib:
        found = lib.faces(person, unassigned=unassigned)
    for f in found:
        if as_json:
            emit(f.to_dict())
        else:
            gate = "low" if f.low_quality else "ok"
            click.echo(f"{f.id}\t{f.state}\t{f.person_id or '-'}\t{gate}\t{f.photo}")


@library.command()
@library_argument
@click.argument("person", type=ID)
@click.argument("name", required=False)
@click.option("--clear", is_flag=True, help="Remove the name (an unnamed cluster again).")
def name(library_path, person, name, clear):
    """Name a person or cluster (or --clear its name)."""
    if (name is None) != clear:
        raise click.UsageError("give a NAME, or --clear")
    with open_library(library_path) as lib:
        p = lib.name(person, None if clear else name)
    click.echo(f"{p.id}\t{p.name or '(unnamed cluster)'}")


@library.command()
@library_argument
@click.argument("people_ids", metavar="PERSON...", nargs=-1, type=ID, required=True)
def merge(library_path, people_ids):
    """Merge people/clusters into one (the first named survives, else the first given)."""
    with open_library(library_path) as lib:
        click.echo(lib.merge(people_ids))


@library.command()
@library_argument
@click.argument("person", type=ID)
@click.argument("face_ids", metavar="FACE...", nargs=-1, type=ID, required=True)
def split(library_path, person, face_ids):
    """Move FACEs of PERSON into a new cluster; print its id. They stay apart from now on."""
    with open_library(library_path) as lib:
        click.echo(lib.split(person, face_ids))


@library.command()
@library_argument
@click.argument("face", type=ID)
@click.argument("person")
def move(library_path, face, person):
    """Move FACE to PERSON (an id, or "none" for nobody)."""
    target = None if person.lower() == "none" else _int(person, "PERSON")
    with open_library(library_path) as lib:
        f = lib.move(face, target)
    click.echo(f"{f.id}\t{f.state}\t{f.person_id or '-'}")


@library.command()
@library_argument
@click.argument("face_a", type=ID)
@click.argument("face_b", type=ID)
@click.option("--cannot", is_flag=True, help="A cannot-link (different people) instead.")
def link(library_path, face_a, face_b, cannot):
    """Must-link two faces (the same person), or --cannot (different people)."""
    with open_library(library_path) as lib:
        (lib.cannot_link if cannot else lib.must_link)(face_a, face_b)


@library.command()
@library_argument
@click.argument("face_a", type=ID)
@click.argument("face_b", type=ID)
def unlink(library_path, face_a, face_b):
    """Forget the links between two faces (exit status 2 when there were none)."""
    with open_library(library_path) as lib:
        removed = lib.unlink(face_a, face_b)
    if not removed:
        raise UserError(f"faces {face_a} and {face_b} are not linked")


@library.command()
@library_argument
@click.argument("face_ids", metavar="FACE...", nargs=-1, type=ID, required=True)
@click.option("--reason", type=click.Choice(["not_a_face", "ignore"]), default="not_a_face")
@click.option("--undo", is_flag=True, help="Take the rejection back.")
def reject(library_path, face_ids, reason, undo):
    """Reject faces: not a face, or ignored (never clustered)."""
    with open_library(library_path) as lib:
        _each(face_ids, lambda f: lib.unreject(f) if undo else lib.reject(f, reason), False)


@library.command()
@library_argument
@click.argument("person", type=ID)
@click.option("-k", default=10, show_default=True, type=click.IntRange(min=1))
@json_option
def suggest(library_path, person, k, as_json):
    """The unassigned faces nearest to PERSON ("is this them?"): face id, distance."""
    with open_library(library_path) as lib:
        found = lib.suggestions(person, k)
    for s in found:
        if as_json:
            emit(s.to_dict())
        else:
            click.echo(f"{s.face_id}\t{s.distance:.4f}")


@library.command()
@library_argument
@click.argument("person", type=ID)
@click.argument("face_ids", metavar="FACE...", nargs=-1, type=ID, required=True)
@json_option
def accept(library_path, person, face_ids, as_json):
    """Accept suggestions: the FACEs are PERSON's."""
    with open_library(library_path) as lib:
        _each(face_ids, lambda f: lib.accept(person, f), as_json)


@library.command()
@library_argument
@click.argument("person", type=ID)
@click.argument("face_ids", metavar="FACE...", nargs=-1, type=ID, required=True)
@json_option
def decline(library_path, person, face_ids, as_json):
    """Decline suggestions: the FACEs are not PERSON (never suggested or assigned again)."""
    with open_library(library_path) as lib:
        _each(face_ids, lambda f: lib.decline(person, f), as_json)


@library.command()
@library_argument
@json_option
def constraints(library_path, as_json):
    """List the stored corrections (links, rejections, names); exit 1 if any is broken."""
    with open_library(library_path) as lib:
        found, broken = lib.constraints(), lib.violations()
    for c in found:
        if as_json:
            emit(c.to_dict())
        else:
            click.echo(f"{c.kind}\t{c.face_a or '-'}\t{c.face_b or c.person_id or '-'}\t{c.origin}")
    if broken:
        click.echo(f"{len(broken)} constraints broken: {broken[:3]}", err=True)
        click.get_current_context().exit(1)


def _each(face_ids, action, as_json: bool) -> None:
    """Apply `action` to each face; failures listed, exit status by the conventions."""
    failed: list[str] = []
    done = 0
    for face_id in face_ids:
        try:
            face = action(face_id)
        except FaceNetError as exc:
            input_failed(str(face_id), exc, as_json, failed, key="face")
            continue
        done += 1
        if as_json:
            emit(face.to_dict())
        else:
            click.echo(f"{face.id}\t{face.state}\t{face.person_id or '-'}")
    finish(done, failed, "face")


def _int(text: str, what: str) -> int:
    try:
        return ID.convert(text, None, None)
    except click.BadParameter:
        raise click.BadParameter(f"{text!r} is not an id", param_hint=what) from None
