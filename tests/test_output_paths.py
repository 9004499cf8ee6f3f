"""Output paths the user names (`embed -o`, `export -o`, `align SRC DST`, saved classifiers and
models): refused in one line with exit status 2 when writing would replace an input, a device,
a folder or (export, without --force) an existing file; never a traceback or a temporary file
left behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from facenet.cli import main
from facenet.errors import OutputError

pytest.importorskip("keras")


def _photo(path: Path) -> Path:
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _refused(result, *words: str) -> None:
    """Exit status 2, one line on stderr naming `words`, no traceback."""
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert all(word in lines[0] for word in words), result.output


def _temporary_files(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(".") or p.name.endswith(".tmp")]


# --- embed -o ---------------------------------------------------------------------------------


def test_embed_refuses_to_write_over_its_input(tmp_path):
    victim = _photo(tmp_path / "victim.png")
    before = victim.read_bytes()
    result = CliRunner().invoke(main, ["embed", str(victim), "-o", str(victim), "--no-detect"])
    _refused(result, str(victim), "one of the inputs")
    assert victim.read_bytes() == before


def test_embed_refuses_what_is_not_a_regular_file(tmp_path):
    """A FIFO here; as root, a character device (a copy of /dev/null) too: os.replace would
    have put a regular file in its place."""
    photo = _photo(tmp_path / "a.png")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    targets = [fifo]
    if os.geteuid() == 0:
        os.mknod(tmp_path / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        targets.append(tmp_path / "null")
    for target in targets:
        result = CliRunner().invoke(main, ["embed", str(photo), "-o", str(target), "--no-detect"])
        _refused(result, str(target), "not a regular file")
        assert not stat.S_ISREG(target.lstat().st_mode)


@pytest.mark.parametrize("where", ["folder", "under_a_file"])
def test_embed_bad_output_paths_are_one_line_errors(tmp_path, where):
    photo = _photo(tmp_path / "a.png")
    folder = tmp_path / "out"
    folder.mkdir()
    (tmp_path / "afile").write_text("x")
    out = folder if where == "folder" else tmp_path / "afile" / "x.npz"
    result = CliRunner().invoke(main, ["embed", str(photo), "-o", str(out), "--no-detect"])
    _refused(result, str(out))
    assert not _temporary_files(tmp_path) and not list(folder.iterdir())


def test_embed_unwritable_place_is_one_line_error(small_model_file, tmp_path):
    """/proc takes no new file: the error comes at write time, still in one line."""
    photo = _photo(tmp_path / "a.png")
    out = "/proc/facenet-test.npz"
    args = ["embed", str(photo), "-o", out, "-m", str(small_model_file), "--no-detect"]
    _refused(CliRunner().invoke(main, args), out, "cannot write")


def test_embed_output_is_readable_by_all(small_model_file, tmp_path):
    """mkstemp's 0600 is gone: the npz gets the umask's mode, as any new file does."""
    photo = _photo(tmp_path / "a.png")
    out = tmp_path / "e.npz"
    old = os.umask(0o022)
    try:
        args = ["embed", str(photo), "-o", str(out), "-m", str(small_model_file), "--no-detect"]
        result = CliRunner().invoke(main, args)
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert np.load(out)["embeddings"].shape == (1, 128)
    assert not _temporary_files(tmp_path)


# --- export -o / --force ----------------------------------------------------------------------


def test_export_default_output_never_goes_into_the_package(tmp_path, monkeypatch):
    from facenet import export

    monkeypatch.chdir(tmp_path)
    bundled = export.PACKAGE_DIR / "weights" / "facenet-mobilenet.keras"
    assert export.default_output(bundled, "onnx") == tmp_path / "facenet-mobilenet.onnx"
    assert export.default_output(tmp_path / "m" / "x.keras", "tflite", "int8") == (
        tmp_path / "m" / "x.int8.tflite"
    )


def test_export_refuses_an_existing_output_without_force(small_model_file, tmp_path):
    model = tmp_path / "small.keras"
    model.write_bytes(small_model_file.read_bytes())
    existing = tmp_path / "small.onnx"
    existing.write_bytes(b"the shipped model")
    result = CliRunner().invoke(main, ["export", str(model), "-f", "onnx", "--no-check"])
    _refused(result, str(existing), "--force")
    assert existing.read_bytes() == b"the shipped model"
    pytest.importorskip("tf2onnx")
    args = ["export", str(model), "-f", "onnx", "--no-check", "--force"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert existing.read_bytes()[:20] != b"the shipped model"[:20]
    assert not _temporary_files(tmp_path)


@pytest.mark.parametrize("where", ["folder", "under_a_file", "the_model"])
def test_export_bad_output_paths_are_one_line_errors(small_model_file, tmp_path, where):
    (tmp_path / "folder").mkdir()
    (tmp_path / "afile").write_text("x")
    out = {
        "folder": tmp_path / "folder",
        "under_a_file": tmp_path / "afile" / "x.onnx",
        "the_model": small_model_file,
    }[where]
    args = ["export", str(small_model_file), "-f", "onnx", "-o", str(out), "--force"]
    _refused(CliRunner().invoke(main, args), str(out))
    assert small_model_file.stat().st_size > 0 and not list((tmp_path / "folder").iterdir())


def test_export_savedmodel_never_replaces_a_folder_that_is_not_one(small_model_file, tmp_path):
    """The old code removed whatever folder -o named (shutil.rmtree) before writing into it."""
    photos = tmp_path / "photos"
    photos.mkdir()
    _photo(photos / "a.png")
    args = ["export", str(small_model_file), "-f", "savedmodel", "-o", str(photos)]
    _refused(CliRunner().invoke(main, args), str(photos), "--force")
    _refused(CliRunner().invoke(main, [*args, "--force"]), str(photos), "saved_model.pb")
    assert (photos / "a.png").is_file()


def test_export_savedmodel_keeps_the_old_export_when_the_new_cannot_move_in(
    small_model_file, tmp_path, monkeypatch
):
    """--force over an earlier SavedModel deleted it before moving the new one in: a failed
    move lost both. Now the old one is back in place and the error is one line."""
    out = tmp_path / "sm"
    args = ["export", str(small_model_file), "-f", "savedmodel", "-o", str(out), "--force"]
    assert CliRunner().invoke(main, args).exit_code == 0
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    real_rename = Path.rename

    def rename(self, target):
        if Path(target) == out and self.name == "sm":  # the new export moving in
            raise OSError(28, "No space left on device")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    _refused(CliRunner().invoke(main, args), str(out))
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert not _temporary_files(tmp_path)


@pytest.mark.parametrize(
    "fmt, name", [("tflite", "x.onnx"), ("onnx", "x.tflite"), ("onnx", "x.txt")]
)
def test_export_output_suffix_must_match_the_format(small_model_file, tmp_path, fmt, name):
    """A LiteRT file named .onnx (or an ONNX file named .txt) was written, and no command could
    load it afterwards."""
    out = tmp_path / name
    args = ["export", str(small_model_file), "-f", fmt, "-o", str(out), "--no-check"]
    _refused(CliRunner().invoke(main, args), str(out), f".{fmt}")
    assert not out.exists()


def test_export_savedmodel_named_as_a_file_and_an_empty_output(small_model_file, tmp_path):
    """`-f savedmodel -o x.onnx` made a folder named x.onnx; `-o ""` wrote to the default path."""
    args = ["export", str(small_model_file), "--no-check"]
    named = tmp_path / "x.onnx"
    _refused(CliRunner().invoke(main, [*args, "-f", "savedmodel", "-o", str(named)]), "folder")
    assert not named.exists()
    _refused(CliRunner().invoke(main, [*args, "-f", "onnx", "-o", ""]), "empty")
    assert not small_model_file.with_suffix(".onnx").exists()


# --- align SRC DST ----------------------------------------------------------------------------


@pytest.fixture
def source(tmp_path) -> Path:
    src = tmp_path / "src"
    (src / "person").mkdir(parents=True)
    _photo(src / "person" / "a.png")
    return src


@pytest.mark.parametrize("dst", ["src", "src/inner", "link", "link/person/deeper"])
def test_align_refuses_a_destination_inside_the_source(source, tmp_path, dst):
    (tmp_path / "link").symlink_to(source)
    before = sorted(source.rglob("*"))
    result = CliRunner().invoke(main, ["align", str(source), str(tmp_path / dst), "-j", "1"])
    _refused(result, "outside the source folder")
    assert sorted(source.rglob("*")) == before


def test_align_into_a_file_is_one_line_error(source, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for dst in (afile, afile / "out"):
        result = CliRunner().invoke(main, ["align", str(source), str(dst), "-j", "1"])
        _refused(result, str(dst), "not a folder")
    assert afile.read_text() == "x"


# --- library writers --------------------------------------------------------------------------


def test_classifier_save_into_a_folder_is_an_output_error(tmp_path):
    from facenet.classify import FaceClassifier

    folder = tmp_path / "c.joblib"
    folder.mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        FaceClassifier(None, "knn", "id", "test", 2).save(folder)
    assert [p.name for p in tmp_path.iterdir()] == ["c.joblib"]


def test_save_model_onto_a_folder_is_an_output_error(tmp_path):
    from facenet.metadata import ModelInfo
    from facenet.models import save_model

    folder = tmp_path / "m.keras"
    folder.mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        save_model(None, ModelInfo(backbone="mobilenet"), folder)


# --- a path option's value that looks like an option -----------------------------------------

OPTION_LIKE = [
    ["serve", "--gallery", "--help"],
    ["serve", "-g", "-x", "--port", "0"],
    ["identify", "-g", "--json", "a.png"],
    ["gallery", "create", "-m", "--help", "G"],
    ["gallery", "create", "--index-uri", "--help", "G"],
    ["gallery", "set-threshold", "--from-model", "--clear", "G"],
    ["embed", "-o", "--no-detect", "a.png"],
    ["calibrate", "-o", "--force", "m.keras"],
    ["calibrate", "--cache-dir", "--no-cache", "m.keras", "-o", "c.keras"],
    ["classify", "train", "-o", "--help", "."],
    ["classify", "predict", "-c", "--json", "a.png"],
    ["cluster", "-o", "--json", "a.png"],
    ["convert", "-o", "--force", "w.h5"],
    ["evaluate", "lfw", "-o", "--help"],
    ["evaluate", "pairs", "--cache-dir", "-", "p.tsv"],
    ["export", "-o", "--force", "m.keras"],
    ["train", "-o", "--help", "."],
    ["train", "--align-cache", "-j", "."],
]


@pytest.mark.parametrize("args", OPTION_LIKE, ids=" ".join)
def test_a_path_option_refuses_a_value_that_looks_like_an_option(tmp_path, monkeypatch, args):
    """click takes the token after a path option as its value: `serve --gallery --help` served
    a new gallery file named `--help`. Now a usage error (exit 2, one Error line naming the
    option), and nothing is created."""
    import facenet.cli.serve

    def served(*_):
        raise AssertionError("served: the value was taken for a gallery")

    monkeypatch.setattr(facenet.cli.serve, "_serve", served)  # a regression fails, never hangs
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "looks like an option, not a path" in errors[0], result.output
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_every_path_option_is_guarded():
    """The check is given where the `facenet` group hands out a command, so no command, present
    or future, has a path option without it."""
    import click

    from facenet.cli import COMMANDS
    from facenet.cli.conventions import OptionPath

    def options(command: click.Command):
        yield from (p for p in command.params if isinstance(p, click.Option))
        for sub in getattr(command, "commands", {}).values():
            yield from options(sub)

    with click.Context(main) as ctx:
        paths = [
            (name, option.name, option.type)
            for name in COMMANDS
            for option in options(main.get_command(ctx, name))
            if isinstance(option.type, click.Path)
        ]
    unguarded = [(name, option) for name, option, kind in paths if type(kind) is not OptionPath]
    assert len(paths) > 20 and unguarded == []


def test_option_path_takes_a_dash_only_where_allowed_and_a_dotted_name():
    import click

    from facenet.cli.conventions import OptionPath

    assert OptionPath(allow_dash=True).convert("-", None, None) == "-"
    assert OptionPath().convert("./--help", None, None) == "./--help"
    for value in ("-", "--help", "-o"):
        with pytest.raises(click.BadParameter, match="looks like an option"):
            OptionPath().convert(value, None, None)
    like = OptionPath.like(click.Path(exists=True, dir_okay=False, allow_dash=True))
    assert (like.exists, like.dir_okay, like.allow_dash) == (True, False, True)
