"""Thumbnails come from the crops the gallery keeps (so CLI-enrolled faces have them too), and
removing a face or a person, from the CLI or the API, leaves no trace of it."""

from __future__ import annotations

import io
import sqlite3

import pytest
from click.testing import CliRunner
from PIL import Image

from facenet.cli import main

from .test_server_support import (  # noqa: F401  (fixtures)
    blank_png_fixture,
    files,
    local_client,
    photo_path,
    photos_fixture,
)

pytest.importorskip("fastapi")

API = "/api/v1"


def cli(*args) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def traces(path, face_ids) -> int:
    """Rows anywhere in the gallery that still belong to these faces."""
    db = sqlite3.connect(path)
    marks = ",".join("?" * len(face_ids))
    try:
        return sum(
            db.execute(f"SELECT COUNT(*) FROM {table} WHERE {column} IN ({marks})", face_ids)
            .fetchone()[0]
            for table, column in (("faces", "id"), ("face_crops", "face_id"),
                                  ("face_embeddings", "face_id"))
        )  # fmt: skip
    finally:
        db.close()


def thumbnail_side(client, face_id: int) -> int:
    r = client.get(f"{API}/faces/{face_id}/thumbnail")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg", r.text
    return max(Image.open(io.BytesIO(r.content)).size)


def test_cli_enrolled_faces_have_thumbnails_and_cli_removal_removes_them(
    tmp_path, small_model, small_model_file, photos
):
    from facenet.gallery import Gallery
    from facenet.server import Settings, create_app

    path = tmp_path / "g.db"
    cli("gallery", "create", path, "--model", small_model_file)
    cli("gallery", "enroll", path, "--name", "Bush", photo_path("bush1"), photo_path("bush2"))
    cli("gallery", "enroll", path, "--name", "Powell", photo_path("powell1"))
    gallery = Gallery.open(path, small_model)
    try:
        with local_client(create_app(small_model, gallery, Settings(thumbnail_size=64))) as client:
            bush, powell = client.get(f"{API}/people").json()
            for face_id in bush["face_ids"] + powell["face_ids"]:
                assert thumbnail_side(client, face_id) == 64
            one = bush["face_ids"][0]
            assert "removed face" in cli("gallery", "remove", path, "--face", one)
            assert client.get(f"{API}/faces/{one}/thumbnail").status_code == 404
            assert "removed Powell" in cli("gallery", "remove", path, "Powell")
            for face_id in powell["face_ids"]:
                assert client.get(f"{API}/faces/{face_id}/thumbnail").status_code == 404
            assert traces(path, [one, *powell["face_ids"]]) == 0
            assert thumbnail_side(client, bush["face_ids"][1]) == 64  # the others stay
    finally:
        gallery.close()


def test_api_removal_leaves_no_trace(tmp_path, small_model, photos):
    from facenet.gallery import Gallery
    from facenet.server import Settings, create_app

    path = tmp_path / "g.db"
    gallery = Gallery.create(path, small_model)
    try:
        with local_client(create_app(small_model, gallery, Settings())) as client:
            r = client.post(
                f"{API}/people",
                data={"name": "Bush"},
                files=files(images=[photos["bush1"], photos["bush2"]]),
            )
            person = r.json()["person"]
            first, second = person["face_ids"]
            assert traces(path, [first, second]) == 4  # a face row and a crop each
            assert client.delete(f"{API}/faces/{first}").status_code == 200
            assert client.get(f"{API}/faces/{first}/thumbnail").status_code == 404
            assert traces(path, [first]) == 0
            assert thumbnail_side(client, second) == 112
            assert client.delete(f"{API}/people/{person['id']}").status_code == 200
            assert client.get(f"{API}/faces/{second}/thumbnail").status_code == 404
            assert traces(path, [second]) == 0
        assert not (tmp_path / "g.db.thumbs").exists()  # nothing is written beside the gallery
    finally:
        gallery.close()
