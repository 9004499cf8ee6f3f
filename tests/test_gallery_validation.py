"""One rule for person names and metadata, whichever way they come in: the Gallery methods, the
CLI (`gallery enroll --metadata`, `gallery rename`) and the API (see test_server_security)."""

from __future__ import annotations

import json

import pytest

from facenet.errors import GalleryError
from facenet.gallery import Gallery
from facenet.gallery.validation import (
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    MAX_NAME_LENGTH,
    check_metadata,
    check_name,
)

from .test_gallery import FakeModel, make_tree, photo, save
from .test_gallery_cli import fake, run  # noqa: F401 (fixture)

HOSTILE_NAMES = [
    "\x1b]0;pwned\x07Eve",  # sets the terminal title
    "Eve\x1b[2J",  # clears the screen
    "Eve\x00",
    "Eve\x9b31m",  # C1 CSI
    "Eve\u202etxt.exe",  # right-to-left override
    "Eve\u2028Mallory",  # line separator
    "A\nB",
]


def nested(depth: int) -> dict:
    """An object `depth` levels deep: {"a": {"a": ... {}}}."""
    value: dict = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_control_characters_in_names_are_refused(name):
    with pytest.raises(GalleryError, match="control characters|line breaks"):
        check_name(name)


def test_names_within_the_rule_pass():
    assert check_name("  Zoë O'Brien-Łukasz 李 ") == "Zoë O'Brien-Łukasz 李"
    assert check_name("x" * MAX_NAME_LENGTH) == "x" * MAX_NAME_LENGTH
    assert check_name("ناصر\u200cالدین") == "ناصر\u200cالدین"  # a zero-width non-joiner is text
    with pytest.raises(GalleryError, match=f"at most {MAX_NAME_LENGTH} characters; got 131,000"):
        check_name("x" * 131_000)
    for bad in ("", "   ", None, "Unknown"):
        with pytest.raises(GalleryError):
            check_name(bad)


def test_metadata_depth_size_and_keys():
    assert check_metadata(None) == {}
    assert check_metadata(nested(MAX_METADATA_DEPTH)) == nested(MAX_METADATA_DEPTH)
    for depth in (MAX_METADATA_DEPTH + 1, 900, 100_000):  # checked without recursion
        with pytest.raises(GalleryError, match="nested too deeply"):
            check_metadata(nested(depth))
    with pytest.raises(GalleryError, match="nested too deeply"):
        check_metadata({"a": [[[[[[[[[]]]]]]]]]})
    with pytest.raises(GalleryError, match="bytes as JSON"):
        check_metadata({"notes": "x" * MAX_METADATA_BYTES})
    with pytest.raises(GalleryError, match="bytes as JSON"):
        check_metadata({"list": [0] * MAX_METADATA_BYTES})
    for bad_key in ("", "k" * 101, "a\x1bb"):
        with pytest.raises(GalleryError, match="keys"):
            check_metadata({bad_key: 1})
    with pytest.raises(GalleryError, match="keys"):
        check_metadata({"a": {1: 2}})
    with pytest.raises(GalleryError, match="finite"):
        check_metadata({"a": float("nan")})
    with pytest.raises(GalleryError, match="values must be JSON"):
        check_metadata({"a": {1, 2}})
    with pytest.raises(GalleryError, match="JSON object"):
        check_metadata([1])


def test_every_gallery_method_applies_the_rule(tmp_path):
    gallery = Gallery.create(tmp_path / "g.db", FakeModel())
    ada = save(tmp_path / "ada.png", photo((5, 1, 30)))
    with gallery:
        with pytest.raises(GalleryError, match="control"):
            gallery.enroll("Eve\x1b[2J", [ada])
        with pytest.raises(GalleryError, match="nested too deeply"):
            gallery.enroll("Ada", [ada], nested(900))
        with pytest.raises(GalleryError, match="control"):
            gallery.add_person("Eve\x00")
        gallery.enroll("Ada", [ada], {"team": {"role": "lead"}})
        with pytest.raises(GalleryError, match="at most 200"):
            gallery.rename("Ada", "A" * 131_000)
        with pytest.raises(GalleryError, match="control"):
            gallery.rename("Ada", "Ada\x07")
        assert [(p.name, p.metadata) for p in gallery.people()] == [
            ("Ada", {"team": {"role": "lead"}})
        ]


def test_folder_names_follow_the_rule(tmp_path):
    root = make_tree(tmp_path / "people", people=1, photos=1)
    (next(root.iterdir())).rename(root / "Eve\x1b[2J")
    with Gallery.create(tmp_path / "g.db", FakeModel()) as gallery:
        with pytest.raises(GalleryError, match="control"):
            gallery.enroll_folder(root)
        assert gallery.people() == []


def test_cli_refuses_deep_metadata_and_hostile_names(tmp_path, fake):  # noqa: F811
    g = tmp_path / "g.db"
    assert run("gallery", "create", g).exit_code == 0
    ada = save(tmp_path / "ada.png", photo((5, 1, 30)))
    for depth in (900, 5000):
        deep = (
            json.dumps(nested(depth)) if depth < 990 else "{" + '"a":{' * depth + "}" * depth + "}"
        )
        result = run("gallery", "enroll", g, "--name", "Ada", ada, "--metadata", deep)
        assert result.exit_code == 2, result.output
        assert "nested too deeply" in result.output and "Traceback" not in result.output
    result = run("gallery", "enroll", g, "--name", "\x1b]0;pwned\x07Eve", ada)
    assert result.exit_code == 2 and "control characters" in result.output
    assert "\x1b" not in result.output  # the refusal does not echo the escape code either
    assert run("gallery", "enroll", g, "--name", "Ada", ada).exit_code == 0
    result = run("gallery", "rename", g, "Ada", "x" * 131_000)
    assert result.exit_code == 2 and "at most 200 characters" in result.output
    listing = run("gallery", "list", g, "--json").output
    assert [json.loads(line)["name"] for line in listing.splitlines()] == ["Ada"]


def test_names_that_draw_nothing_are_refused():
    """A zero-width joiner, a lone combining mark, a Hangul filler or the blank Braille pattern
    passed as a name: `gallery list` and every match then showed a blank where a name was."""
    for blank in ("\u200d", "\u0308", "\u200c\u200d", "\u3164", "\u2800", "\u115f\u0301"):
        with pytest.raises(GalleryError, match="^a person's name needs a visible character"):
            check_name(blank)
    for name in ("Zoe\u0308", "\u0627\u200c\u0628", "😀", "李", "A\u3164B"):
        assert check_name(name)


def test_a_blank_name_is_refused_by_enroll_and_rename(tmp_path):
    with Gallery.create(tmp_path / "g.db", FakeModel()) as g:
        with pytest.raises(GalleryError, match="visible character"):
            g.enroll("\u200d", [photo((1, 0, 30))])
        g.enroll("Ada", [photo((1, 0, 30))])
        with pytest.raises(GalleryError, match="visible character"):
            g.rename("Ada", "\u2800")
        assert [p.name for p in g.people()] == ["Ada"]


def test_a_gallery_path_that_is_no_path(tmp_path, monkeypatch):
    """`Gallery.create(None, model)`, `Gallery.open(b"g.db")` and `Library.open(None)` failed
    inside pathlib with a TypeError; now one ArgumentError, and no file is made."""
    from facenet.errors import ArgumentError
    from facenet.people import Library

    monkeypatch.chdir(tmp_path)
    for call in (
        lambda: Gallery.create(None, FakeModel()),
        lambda: Gallery.create(b"g.db", FakeModel()),
        lambda: Gallery.open(5),
        lambda: Library.open(None, FakeModel()),
    ):
        with pytest.raises(ArgumentError, match="^a gallery path is a str or a Path; got "):
            call()
    assert list(tmp_path.iterdir()) == []
