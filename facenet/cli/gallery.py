"""facenet gallery create|enroll|list|remove|rename|merge|calibrate|set-threshold, and facenet
identify."""

from __future__ import annotations

import json

import click

from ..errors import GalleryError
from ..metadata import DEFAULT_K
from ..text import plural
from . import model_option
from .conventions import (
    FiniteRange,
    batch_size_option,
    emit,
    finish,
    input_failed,
    json_option,
    photo_path,
    progress_option,
    threshold_option,
    want_progress,
    warn_uncalibrated,
)

gallery_argument = click.argument(
    "gallery_path", metavar="GALLERY", type=click.Path(dir_okay=False)
)


def load_model(model_path: str | None):
    from ..api import FaceNet

    return FaceNet.load(model_path)


def open_gallery(path: str, model_path: str | None = None, *, with_model: bool = False):
    """Open a gallery; with_model loads --model, else the model file the gallery recorded."""
    from ..gallery import Gallery

    gallery = Gallery.open(path)
    if not with_model:
        return gallery
    from ..catalog import resolve

    source = model_path or gallery.model_path or None
    if source is not None and not resolve(source)[0].is_file():
        gallery.close()
        raise GalleryError(
            f"{path}: its model file {source} is gone; pass the same model with --model"
        )
    try:
        gallery.attach(load_model(source))
    except BaseException:
        gallery.close()
        raise
    return gallery


@click.group()
def gallery() -> None:
    """A persistent gallery of people: enrol photos, then `facenet identify`."""


index_option = click.option(
    "--index",
    "index",
    metavar="NAME",
    help="Search index backend: faiss (default), or milvus (facenet-keras[milvus]; Milvus Lite by "
    "default); an existing gallery uses the one it records.",
)
index_uri_option = click.option(
    "--index-uri",
    "index_uri",
    type=click.Path(),  # a Milvus Lite file, or a server's URL (never starts with "-")
    metavar="URI",
    help="Milvus server (http://host:19530) or Milvus Lite file (*.db); default beside GALLERY.",
)


@gallery.command()
@gallery_argument
@model_option
@index_option
@index_uri_option
def create(gallery_path, model_path, index, index_uri):
    """Create an empty gallery (a SQLite file) for a model's embeddings."""
    from ..gallery import Gallery
    from ..gallery.index import DEFAULT_BACKEND

    model = load_model(model_path)
    warn_uncalibrated(model, open_set=True)
    with Gallery.create(
        gallery_path, model, model_path or "", index=index or DEFAULT_BACKEND, uri=index_uri
    ) as g:
        click.echo(f"created {g.path} for model {g.model_name!r} ({g.embedding_size}-d)")


@gallery.command()
@gallery_argument
@click.argument("photos", nargs=-1, type=photo_path())
@click.option("--name", "-n", default=None, help="The person shown in PHOTOS.")
@click.option(
    "--folder", type=click.Path(file_okay=False), default=None,
    help="A folder with one sub-folder of photos per person (folder name = person's name).",
)  # fmt: skip
@click.option("--metadata", default=None, help="JSON object stored with the person (with --name).")
@click.option(
    "--from-parquet", "parquet", type=click.Path(file_okay=False), default=None,
    help="The output folder of `facenet embed --engine`: enrol its embeddings as they are "
    "(person: --name, else each photo's folder name; photos directly in an embedded "
    "folder are skipped, as with --folder).",
)  # fmt: skip
@click.option(
    "--all-faces", is_flag=True, help="With --from-parquet: every face, not the main one."
)
@model_option
@batch_size_option()
@progress_option
@json_option
def enroll(gallery_path, photos, name, folder, metadata, parquet, all_faces, model_path,
           batch_size, progress, as_json):  # fmt: skip
    """Enrol photos of one person (--name NAME PHOTOS...) or a whole tree (--folder ROOT), or
    the embeddings of a batch run (--from-parquet DIR).

    The most prominent face of each photo is enrolled; photos already in the gallery, without
    a face, or unreadable are skipped and listed (exit status 1; 2 when none is enrolled).
    """
    if parquet is not None:
        if photos or folder or metadata or model_path:
            raise click.UsageError("--from-parquet takes no PHOTOS, --folder, --metadata, --model")
        from .gallery_parquet import enroll_parquet

        return enroll_parquet(gallery_path, parquet, name, all_faces, as_json)
    if all_faces:
        raise click.UsageError("--all-faces goes with --from-parquet")
    if (name is None) == (folder is None):
        raise click.UsageError("give either --name NAME PHOTOS... or --folder ROOT")
    if name is not None and not photos:
        raise click.UsageError("--name needs at least one photo")
    if folder is not None and photos:
        raise click.UsageError("--folder takes no PHOTOS arguments")
    extra = None
    if metadata is not None:
        try:
            extra = json.loads(metadata)
        except ValueError as exc:
            raise click.BadParameter(f"not JSON ({exc})", param_hint="--metadata") from None
        except RecursionError:
            raise click.BadParameter("nested too deeply", param_hint="--metadata") from None
    show = want_progress(progress)
    lines = _EnrollLines() if as_json else None
    with open_gallery(gallery_path, model_path, with_model=True) as g:
        options = {"batch_size": batch_size, "progress": show, "on_batch": lines}
        if folder is not None:
            report = g.enroll_folder(folder, **options)
        else:
            report = g.enroll(name, list(photos), extra, **options)
    if lines is not None:
        lines(report)  # what came after the last batch (photos loose in --folder's root)
    else:
        for note in report.notes:
            click.echo(f"note: {note}")
        for skipped in report.skipped:
            click.echo(f"skipped {skipped.source}: {skipped.reason}", err=True)
    click.echo(report.summary(), err=as_json)
    finish(len(report.enrolled), [s.source for s in report.skipped], "photo")


class _EnrollLines:
    """`enroll --json`: a line per photo as each batch is stored, so an interrupted enrolment
    has printed every face it kept."""

    def __init__(self) -> None:
        self.enrolled = self.skipped = 0

    def __call__(self, report) -> None:
        for e in report.enrolled[self.enrolled :]:
            emit({"photo": e.source, "person": e.person, "face_id": e.face_id,
                  "faces_in_photo": e.faces_in_photo})  # fmt: skip
        for skipped in report.skipped[self.skipped :]:
            emit({"photo": skipped.source, "person": skipped.person, "error": skipped.reason})
        self.enrolled, self.skipped = len(report.enrolled), len(report.skipped)


@gallery.command(name="list")
@gallery_argument
@click.option("--faces", "show_faces", is_flag=True, help="List every face too.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per person.")
def list_(gallery_path, show_faces, as_json):
    """List the named people in a gallery, with their number of faces (the people library's
    unnamed clusters are listed by `facenet library people`)."""
    with open_gallery(gallery_path) as g:
        people = g.people()
        for person in people:
            faces = g.faces(person.name) if show_faces else []
            if as_json:
                row = person.to_dict()
                if show_faces:
                    row["face_list"] = [f.to_dict() for f in faces]
                click.echo(json.dumps(row))
                continue
            extra = f"  {json.dumps(person.metadata)}" if person.metadata else ""
            click.echo(f"{person.name}\t{plural(person.faces, 'face')}{extra}")
            for face in faces:
                click.echo(f"  #{face.id}\t{face.source}")
        if not as_json:
            named_faces = sum(p.faces for p in people)
            click.echo(
                f"{plural(len(people), 'person', 'people')}, {plural(named_faces, 'face')} "
                f"(model {g.model_name!r})",
                err=True,
            )
            if len(g) > named_faces:  # unnamed clusters and unassigned faces: `facenet library`
                click.echo(
                    f"{plural(len(g) - named_faces, 'more face')} in the people library "
                    "(not named; see `facenet library people`)",
                    err=True,
                )
            stale = g.unsearched_faces()
            if stale:  # faces a model migration could not re-embed (see its report)
                click.echo(
                    f"{plural(stale, 'face')} kept on a previous model (not searched)", err=True
                )


@gallery.command()
@gallery_argument
@click.argument("name", required=False)
@click.option("--face", "face_ids", multiple=True, type=int, help="Remove one face by id instead.")
def remove(gallery_path, name, face_ids):
    """Remove a person (and their faces), or single faces with --face ID (repeatable).

    Several --face ids are all removed or none: one unknown id is an error (exit 2) and the
    gallery is left as it was.
    """
    if (name is None) == (not face_ids):
        raise click.UsageError("give either NAME or --face ID")
    with open_gallery(gallery_path) as g:
        if name is not None:
            count = g.remove_person(name)
            click.echo(f"removed {name} and {plural(count, 'face')}")
            return
        for record in g.remove_faces(list(face_ids)):
            owner = record.person or "nobody named (a people-library face)"
            click.echo(f"removed face #{record.id} of {owner} ({record.source})")


@gallery.command()
@gallery_argument
@click.argument("old")
@click.argument("new")
def rename(gallery_path, old, new):
    """Rename a person."""
    with open_gallery(gallery_path) as g:
        person = g.rename(old, new)
    click.echo(f"renamed {old} to {person.name}")


@gallery.command()
@gallery_argument
@click.argument("src")
@click.argument("dst")
def merge(gallery_path, src, dst):
    """Move every face of SRC to DST, then delete SRC."""
    with open_gallery(gallery_path) as g:
        person = g.merge(src, dst)
    click.echo(f"merged {src} into {dst}: {plural(person.faces, 'face')}")


@gallery.command()
@gallery_argument
@click.option(
    "--far", default=0.01, show_default=True,
    type=FiniteRange(0, 1, min_open=True, max_open=True),
    help="Share of strangers that may be named (per probe).",
)  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Report the threshold without storing it.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def calibrate(gallery_path, far, dry_run, as_json):
    """Choose the identification threshold on this gallery's own people.

    Each face of a named person plays a stranger against everyone else: the threshold lets at
    most FAR (above 0, below 1) of them match someone. Needs two or more named people and at
    least 1/FAR of their faces (100 at 1%); people-library faces with no name take no part.
    People with two or more faces also measure how many genuine probes are still identified.
    """
    with open_gallery(gallery_path) as g:
        result = g.calibrate(far, save=not dry_run)
    if as_json:
        click.echo(json.dumps(result))
        return
    verb = "would set" if dry_run else "set"
    click.echo(
        f"{verb} the identification threshold to {result['threshold']:.4f} "
        f"(was {result['previous_threshold']:.4f}): {result['false_accept_rate']:.1%} of "
        f"{result['strangers']} faces as strangers matched someone; "
        f"{result['identified_rate']:.1%} of {result['genuine_probes']} genuine probes identified"
    )


@gallery.command(name="set-threshold")
@gallery_argument
@click.argument("value", required=False, type=FiniteRange(0, 4))
@click.option(
    "--from-model", "from_model", metavar="MODEL", type=click.Path(),
    help="Take the threshold MODEL carries (the calibrated copy of the gallery's model).",
)  # fmt: skip
@click.option("--clear", is_flag=True, help="Drop the gallery's own: the model's applies.")
def set_threshold(gallery_path, value, from_model, clear):
    """Set the gallery's own identification threshold: VALUE (a squared-L2 distance in [0, 4]),
    or the one MODEL carries (--from-model: a copy of the gallery's model that `facenet
    calibrate` wrote; any other model is refused), or none (--clear). It wins over the model's,
    as `facenet gallery calibrate`'s does, also when the gallery's recorded model is used.

    Exit status: 0 set; 2 a usage error or a refused model, nothing changed."""
    if (value is not None) + (from_model is not None) + clear != 1:
        raise click.UsageError("give one of VALUE, --from-model MODEL or --clear")
    with open_gallery(gallery_path) as g:
        if from_model is not None:
            value = g.threshold_of(load_model(from_model))
        before = g.threshold
        g.set_threshold(None if clear else value)
        now, was = f"{g.threshold:.4f}", f"(was {before:.4f})"
        if clear:
            click.echo(f"cleared the gallery's own threshold: the model's {now} applies {was}")
        else:
            click.echo(f"set the identification threshold to {now} {was}")


@click.command()
@click.argument("photos", nargs=-1, required=True, type=photo_path())
@click.option("--gallery", "-g", "gallery_path", required=True, type=click.Path(dir_okay=False))
@model_option
@click.option(
    "--k", "-k", default=DEFAULT_K, show_default=True, type=click.IntRange(min=1),
    help="Nearest people listed per face.",
)  # fmt: skip
@threshold_option
@progress_option
@json_option
def identify(photos, gallery_path, model_path, k, threshold, progress, as_json):
    """Identify every face in PHOTOS against a gallery ("unknown" above the threshold, with the
    nearest person and distance)."""
    from tqdm.auto import tqdm

    from ..errors import ImageError

    failed = []
    with open_gallery(gallery_path, model_path, with_model=True) as g:
        given = threshold if threshold is not None else g.calibrated_threshold
        warn_uncalibrated(g.model, given, open_set=True)
        bar = tqdm(photos, unit="photo", desc="identify", disable=not want_progress(progress))
        for photo in bar:
            try:
                faces = g.identify(photo, k=k, threshold=threshold)
            except ImageError as exc:
                input_failed(photo, exc, as_json, failed)
                continue
            if as_json:
                emit({"photo": photo, "faces": [f.to_dict() for f in faces]})
            else:
                _print_faces(photo, faces)
    finish(len(photos) - len(failed), failed, "photo")


def _print_faces(photo: str, faces) -> None:
    """One tab-separated row per face: photo, box, name, distance, then the other matches; an
    unknown face names its nearest person."""
    if not faces:
        click.echo(f"{photo}\t(no face)")
    for face in faces:
        box = ",".join(f"{v:.0f}" for v in face.face.box)
        distance = "-" if face.distance is None else f"{face.distance:.3f}"
        name = face.name
        if not face.known and face.matches:
            name = f"unknown (nearest {face.matches[0].name})"
        others = ", ".join(f"{m.name} {m.distance:.3f}" for m in face.matches[1:])
        click.echo(f"{photo}\t[{box}]\t{name}\t{distance}\t{others}")


def _register_migrate() -> None:
    from .gallery_migrate import migrate

    gallery.add_command(migrate)


_register_migrate()
