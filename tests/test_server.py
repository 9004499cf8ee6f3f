"""The HTTP API: every endpoint and every error path, through FastAPI's TestClient.

A real (untrained) small model and real LFW photos: the decisions mean nothing, the plumbing is
real. Identity checks therefore use enrolled photos themselves (distance 0) or threshold 4.
"""

from __future__ import annotations

import struct
import threading
import time
import zlib

import numpy as np
import pytest

from .test_server_support import (  # noqa: F401  (fixtures)
    CLIENT_HEADER,
    blank_png_fixture,
    client_fixture,
    error_of,
    files,
    gallery_fixture,
    make_app_fixture,
    photo_path,
    photos_fixture,
    png_bytes,
)

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

API = "/api/v1"


def enroll(client, name, *images, headers=None):
    headers = {**CLIENT_HEADER, **(headers or {})}
    return client.post(
        f"{API}/people", data={"name": name}, files=files(images=list(images)), headers=headers
    )


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height pixels (a decompression bomb's header), with no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


# -- service ----------------------------------------------------------------------------------


def test_health_and_model(client, small_model):
    health = client.get(f"{API}/health").json()
    assert health == {
        "status": "ok",
        "model_id": small_model.model_id,
        "calibrated": False,
        "gallery": {"people": 0, "faces": 0},
    }
    info = client.get(f"{API}/model").json()
    assert info["model_id"] == small_model.model_id
    assert (info["input_size"], info["embedding_size"]) == (64, 128)
    assert info["threshold"] == pytest.approx(small_model.threshold)
    assert info["calibrated"] is False


def test_health_answers_head_for_load_balancers(make_app):
    """HEAD /health (a load balancer's check) was 405; it is 200 with no body, key or not."""
    for settings in ({}, {"api_key": "k" * 16, "api_key_all": True}):
        with TestClient(make_app(**settings)) as client:
            r = client.head(f"{API}/health")
            assert r.status_code == 200 and r.content == b"", (settings, r.text)
            assert r.headers["content-type"] == "application/json"


def test_openapi_lists_every_endpoint(client):
    schema = client.get(f"{API}/openapi.json").json()
    assert schema["info"]["title"] == "facenet"
    paths = set(schema["paths"])
    for path in (
        "/health", "/model", "/embed", "/verify", "/identify", "/cluster", "/people",
        "/people/{person_id}", "/people/{person_id}/faces", "/people/{person_id}/merge",
        "/faces/{face_id}", "/faces/{face_id}/thumbnail",
    ):  # fmt: skip
        assert API + path in paths
    error = schema["paths"][f"{API}/verify"]["post"]["responses"]["422"]
    assert error["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorOut")


def test_openapi_lists_gallery_missing_on_every_change(client):
    """503 `gallery_missing` (any gallery change after the gallery file went) was in no
    route's schema; it is in every change's (gallery, library, migration), in no read's."""
    schema = client.get(f"{API}/openapi.json").json()
    changes, reads = [], []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            (reads if method == "get" or path.endswith(("/embed", "/verify", "/identify",
             "/cluster")) else changes).append((method, path, operation["responses"]))  # fmt: skip
    assert {(m, p) for m, p, _ in changes} >= {
        ("post", f"{API}/people"), ("delete", f"{API}/faces/{{face_id}}"),
        ("post", f"{API}/library/photos"), ("patch", f"{API}/library/people/{{person_id}}"),
        ("post", f"{API}/gallery/migrate"), ("delete", f"{API}/gallery/migrate"),
    }  # fmt: skip
    for method, path, responses in changes:
        ref = responses.get("503", {}).get("content", {}).get("application/json", {})
        assert ref.get("schema", {}).get("$ref", "").endswith("/ErrorOut"), (method, path)
    assert [(m, p) for m, p, responses in reads if "503" in responses] == []


def test_openapi_lists_every_409_code_on_the_changes(client):
    """409 (`name_taken`, `gallery_changed`, `migration_running`) was in the schema of one
    route (starting a migration) and not in the shared catalogue: a rename's or an
    enrolment's schema had no 409. Now every change lists it with each code the server
    answers 409 with (found in its source), and no read does; docs/server.md names them."""
    import re
    from pathlib import Path

    import facenet.server

    sources = Path(facenet.server.__file__).parent.glob("*.py")
    codes = {c for f in sources for c in re.findall(r'ApiError\(\s*409,\s*"(\w+)"', f.read_text())}
    assert codes >= {"name_taken", "gallery_changed", "migration_running"}, codes
    schema = client.get(f"{API}/openapi.json").json()
    listed = {}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            listed[(method, path)] = operation["responses"].get("409")
    changes = [
        ("post", f"{API}/people"), ("post", f"{API}/people/{{person_id}}/faces"),
        ("patch", f"{API}/people/{{person_id}}"), ("post", f"{API}/library/photos"),
        ("post", f"{API}/gallery/migrate"),
    ]  # fmt: skip
    for route in changes:
        conflict = listed[route]
        assert conflict, route
        ref = conflict["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/ErrorOut") and all(c in conflict["description"] for c in codes)
    reads = [r for r, conflict in listed.items() if conflict and r[0] == "get"]
    assert reads == [] and listed[("post", f"{API}/verify")] is None
    docs = (Path(__file__).resolve().parents[1] / "docs" / "server.md").read_text()
    (row,) = [line for line in docs.splitlines() if line.startswith("| 409 |")]
    assert all(f"`{c}`" in row for c in codes), row


def test_web_page_and_static_files(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert 'id="verify-form"' in page.text
    for name in ("app.js", "app.css"):
        assert client.get(f"/static/{name}").status_code == 200
    assert client.get(f"{API}/docs").status_code == 200


# -- faces ------------------------------------------------------------------------------------


def test_embed_returns_every_face(client, photos):
    r = client.post(f"{API}/embed", files=files(image=photos["bush1"]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["width"], body["height"]) == (250, 250)
    assert len(body["faces"]) >= 1
    for face in body["faces"]:
        x1, y1, x2, y2 = face["box"]
        assert 0 <= x1 < x2 <= 250 and 0 <= y1 < y2 <= 250
        assert np.asarray(face["landmarks"]).shape == (5, 2)
        assert 0 < face["score"] <= 1
        assert np.linalg.norm(face["embedding"]) == pytest.approx(1.0, abs=1e-4)
        assert len(face["embedding"]) == 128


def test_embed_blank_image_has_no_faces(client, blank_png):
    r = client.post(f"{API}/embed", files=files(image=blank_png))
    assert r.status_code == 200 and r.json()["faces"] == []


def test_verify_matches_the_python_api(client, photos, small_model):
    r = client.post(f"{API}/verify", files=files(image1=photos["bush1"], image2=photos["powell1"]))
    assert r.status_code == 200, r.text
    body = r.json()
    expected = small_model.verify(photo_path("bush1"), photo_path("powell1"))
    assert body["distance"] == pytest.approx(expected.distance, abs=1e-4)
    assert body["threshold"] == pytest.approx(expected.threshold)
    assert body["same"] is expected.same
    assert len(body["images"]) == 2
    for image in body["images"]:
        assert 0 <= image["chosen"] < len(image["faces"])
        assert "embedding" not in image["faces"][0]


def test_verify_threshold_is_the_clients(client, photos, small_model):
    r = client.post(
        f"{API}/verify",
        files=files(image1=photos["bush1"], image2=photos["bush2"]),
        data={"threshold": "0.5"},
    )
    body = r.json()
    expected = small_model.verify(photo_path("bush1"), photo_path("bush2"), threshold=0.5)
    assert body["distance"] == pytest.approx(expected.distance, abs=1e-4)
    assert body["threshold"] == 0.5 and body["same"] is (body["distance"] <= 0.5)


def test_verify_without_a_face_is_422(client, photos, blank_png):
    r = client.post(f"{API}/verify", files=files(image1=photos["bush1"], image2=blank_png))
    assert error_of(r, 422) == "no_face"
    assert "image20.jpg" in r.json()["error"]["message"]  # names the client's file


def test_formats_are_checked_by_content_not_name(client, photos):
    r = client.post(
        f"{API}/embed", files=[("image", ("photo.jpg", b"%PDF-1.4 not an image", "image/jpeg"))]
    )
    assert error_of(r, 415) == "not_an_image"
    r = client.post(f"{API}/embed", files=[("image", ("notes.txt", photos["bush1"], "text/plain"))])
    assert r.status_code == 200
    r = client.post(f"{API}/embed", files=[("image", ("empty.png", b"", "image/png"))])
    assert error_of(r, 415) == "not_an_image"
    truncated = photos["bush1"][: len(photos["bush1"]) // 3]
    r = client.post(f"{API}/embed", files=[("image", ("cut.jpg", truncated, "image/jpeg"))])
    assert error_of(r, 415) == "not_an_image"


def test_paths_from_clients_are_never_opened(client, photos):
    # a form field holding a server path is not a file upload: a validation error, nothing read
    r = client.post(f"{API}/embed", data={"image": str(photo_path("bush1"))})
    assert error_of(r, 422) == "validation_error"
    r = client.post(
        f"{API}/embed", files=[("image", ("/etc/passwd", photos["bush1"], "image/jpeg"))]
    )
    assert r.status_code == 200  # the name is only a label


def test_oversized_upload_is_413(make_app, photos):
    with TestClient(make_app(max_upload_mb=0.005)) as client:  # 5 kB
        r = client.post(f"{API}/embed", files=files(image=photos["bush1"]))
        assert error_of(r, 413) == "payload_too_large"
        # without a Content-Length (chunked), the body is cut off while being read
        body = b"--x\r\nContent-Disposition: form-data; name=image; filename=a.jpg\r\n\r\n"
        stream = iter([body, photos["bush1"], b"\r\n--x--\r\n"])
        r = client.post(
            f"{API}/embed",
            content=stream,
            headers={"Content-Type": "multipart/form-data; boundary=x"},
        )
        assert error_of(r, 413) == "payload_too_large"


def test_too_many_pixels_is_413(make_app):
    with TestClient(make_app(max_pixels=100_000)) as client:
        big = png_bytes(np.zeros((400, 400, 3), np.uint8))
        r = client.post(f"{API}/embed", files=files(image=big))
        assert error_of(r, 413) == "image_too_large"
    with TestClient(make_app()) as client:  # a bomb's header is refused before any decoding
        r = client.post(f"{API}/embed", files=files(image=png_header_only(100_000, 100_000)))
        assert error_of(r, 413) == "image_too_large"


def test_validation_errors_have_the_error_shape(client, photos):
    assert error_of(client.post(f"{API}/verify"), 422) == "validation_error"
    r = client.post(f"{API}/identify", files=files(image=photos["bush1"]), data={"k": "0"})
    assert error_of(r, 422) == "validation_error"
    r = client.post(
        f"{API}/verify",
        files=files(image1=photos["bush1"], image2=photos["bush1"]),
        data={"threshold": "nan"},
    )
    assert error_of(r, 422) == "validation_error"
    r = client.patch(
        f"{API}/people/1", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert error_of(r, 422) == "validation_error"
    assert error_of(client.get(f"{API}/people/0"), 422) == "validation_error"


def test_unknown_url_and_method(client):
    assert error_of(client.get(f"{API}/nothing"), 404) == "not_found"
    assert error_of(client.get(f"{API}/verify"), 405) == "method_not_allowed"


def test_cluster_groups_every_face(client, photos, blank_png):
    uploads = [photos["bush1"], photos["bush2"], photos["powell1"], blank_png]
    r = client.post(f"{API}/cluster", files=files(images=uploads), data={"method": "agglomerative"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [image["faces"] > 0 for image in body["images"]] == [True, True, True, False]
    faces = body["faces"]
    assert sorted(i for group in body["clusters"] for i in group["faces"]) == list(
        range(len(faces))
    )
    assert {face["image"] for face in faces} == {0, 1, 2}
    assert {face["label"] for face in faces} == {group["label"] for group in body["clusters"]}
    # the same photo twice: one cluster at any threshold
    r = client.post(f"{API}/cluster", files=files(images=[photos["bush1"], photos["bush1"]]))
    labels = [face["label"] for face in r.json()["faces"] if face["score"] > 0.9]
    assert len(set(labels)) <= len(labels) // 2 + 1
    r = client.post(
        f"{API}/cluster", files=files(images=[photos["bush1"]]), data={"threshold": "0"}
    )
    assert error_of(r, 422) == "validation_error"


def test_too_many_files_is_413(make_app, photos):
    with TestClient(make_app(max_files=2)) as client:
        r = client.post(f"{API}/cluster", files=files(images=[photos["bush1"]] * 3))
        assert error_of(r, 413) == "too_many_files"


def test_more_photos_than_the_form_parser_takes_is_413_too(client):
    """Over 1000 photos in one request were refused by the form parser before `--max-files`
    was looked at: 400 `bad_request` "Too many files. Maximum number of files is 1000." where
    the docs say 413 `too_many_files`; and a `--max-files` over 1000 was silently 1000. Now it
    is 413 `too_many_files` naming the server's limit, and `--max-files` is at most 1000."""
    from click.testing import CliRunner

    from facenet.cli import main
    from facenet.server import Settings

    r = client.post(f"{API}/cluster", files=[("images", ("a.png", b"x", "image/png"))] * 1001)
    assert error_of(r, 413) == "too_many_files"
    assert "the limit is 50 a request" in r.json()["error"]["message"]
    with pytest.raises(ValueError, match="max_files"):
        Settings(max_files=1001)
    result = CliRunner().invoke(main, ["serve", "--max-files", "1001"])
    assert result.exit_code == 2 and "max_files must be at most 1000" in result.output


# -- gallery ----------------------------------------------------------------------------------


def test_enroll_identify_and_thumbnails(client, photos, blank_png):
    r = enroll(client, "George W Bush", photos["bush1"], photos["bush2"], blank_png)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["person"]["name"] == "George W Bush" and body["person"]["faces"] == 2
    assert [e["filename"] for e in body["enrolled"]] == ["images0.jpg", "images1.jpg"]
    assert body["skipped"] == [{"filename": "images2.jpg", "reason": "no face found"}]
    assert enroll(client, "Colin Powell", photos["powell1"]).status_code == 201

    for face_id in body["person"]["face_ids"]:
        thumb = client.get(f"{API}/faces/{face_id}/thumbnail")
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
        assert thumb.content[:2] == b"\xff\xd8"

    # an enrolled photo is found at distance 0; the decision uses the gallery's threshold
    r = client.post(f"{API}/identify", files=files(image=photos["bush1"]), data={"k": "2"})
    assert r.status_code == 200, r.text
    faces = r.json()["faces"]
    best = min(faces, key=lambda f: f["distance"])
    assert best["name"] == "George W Bush" and best["distance"] == pytest.approx(0, abs=1e-5)
    assert best["person_id"] == body["person"]["id"]
    assert [m["name"] for m in best["matches"]] == ["George W Bush", "Colin Powell"]
    # threshold 0: nobody is close enough
    r = client.post(f"{API}/identify", files=files(image=photos["bush3"]), data={"threshold": "0"})
    assert {f["name"] for f in r.json()["faces"]} == {"unknown"}

    people = client.get(f"{API}/people").json()
    assert [(p["name"], p["faces"]) for p in people] == [("Colin Powell", 1), ("George W Bush", 2)]
    assert client.get(f"{API}/health").json()["gallery"] == {"people": 2, "faces": 3}


def test_enroll_errors(client, photos, blank_png):
    r = enroll(client, "Nobody", blank_png)
    assert error_of(r, 422) == "nothing_enrolled"
    assert "no face found" in r.json()["error"]["message"]
    assert client.get(f"{API}/people").json() == []
    assert error_of(enroll(client, "unknown", photos["bush1"]), 400) == "invalid_name"
    assert enroll(client, "Bush", photos["bush1"]).status_code == 201
    r = enroll(client, "Someone Else", photos["bush1"])  # the same photo again
    assert error_of(r, 422) == "nothing_enrolled" and "duplicate" in r.json()["error"]["message"]
    r = client.post(f"{API}/people", data={"name": "x"}, files=files(images=b"not an image"))
    assert error_of(r, 415) == "not_an_image"


def test_enrolled_faces_are_labelled_with_the_upload_name_never_a_path(client, gallery, photos):
    """An enrolled upload is listed by its file name (it was "array #0"), recorded as
    `upload:NAME` so `gallery migrate` never opens a file of that name on the server; odd
    names are made safe; a second upload of the same content is still a duplicate."""
    from facenet.gallery.reembed import _photo_path

    odd = "..\\evil\x1b[31m\u202e" + "x" * 300 + ".jpg"
    uploads = [("images", ("bush1.jpg", photos["bush1"], "image/jpeg")),
               ("images", (odd, photos["bush2"], "image/jpeg"))]  # fmt: skip
    r = client.post(f"{API}/people", data={"name": "Bush"}, files=uploads)
    assert r.status_code == 201, r.text
    names = [e["filename"] for e in r.json()["enrolled"]]
    assert names[0] == "bush1.jpg" and len(names[1]) <= 100
    assert names[1].isprintable() and "\u202e" not in names[1] and "/" not in names[1]
    listed = {f["id"]: f["photo"] for f in client.get(f"{API}/library/faces").json()}
    assert [listed[e["face_id"]] for e in r.json()["enrolled"]] == names
    rows = gallery._store.db.execute("SELECT * FROM faces ORDER BY id").fetchall()
    assert [row["source"] for row in rows] == [f"upload:{n}" for n in names]
    assert [_photo_path(row) for row in rows] == [None, None]
    again = enroll(client, "Other", photos["bush1"])  # same bytes, another name: a duplicate
    assert error_of(again, 422) == "nothing_enrolled"
    assert "images0.jpg: duplicate" in again.json()["error"]["message"]


def test_identify_on_an_empty_gallery(client, photos, blank_png):
    faces = client.post(f"{API}/identify", files=files(image=photos["bush1"])).json()["faces"]
    assert faces and all(f["name"] == "unknown" and f["distance"] is None for f in faces)
    r = client.post(f"{API}/identify", files=files(image=blank_png))
    assert r.status_code == 200 and r.json()["faces"] == []


def test_rename_merge_remove(client, photos):
    bush = enroll(client, "Bush", photos["bush1"]).json()["person"]
    powell = enroll(client, "Powell", photos["powell1"], photos["powell2"]).json()["person"]

    r = client.patch(f"{API}/people/{bush['id']}", json={"name": "George W Bush"})
    assert r.status_code == 200 and r.json()["name"] == "George W Bush"
    assert (
        error_of(client.patch(f"{API}/people/{bush['id']}", json={"name": "Powell"}), 409)
        == "name_taken"
    )
    assert (
        error_of(client.patch(f"{API}/people/{bush['id']}", json={"name": "unknown"}), 400)
        == "invalid_name"
    )
    assert (
        error_of(client.patch(f"{API}/people/999", json={"name": "x"}), 404) == "person_not_found"
    )
    assert error_of(client.get(f"{API}/people/999"), 404) == "person_not_found"

    r = client.post(f"{API}/people/{bush['id']}/faces", files=files(images=photos["bush2"]))
    assert r.status_code == 201 and r.json()["person"]["faces"] == 2

    # remove one face, then the person with the rest; thumbnails go with them
    face_id = powell["face_ids"][0]
    assert client.delete(f"{API}/faces/{face_id}").json() == {"id": face_id, "person": "Powell"}
    assert error_of(client.get(f"{API}/faces/{face_id}/thumbnail"), 404) == "thumbnail_not_found"
    assert error_of(client.delete(f"{API}/faces/{face_id}"), 404) == "face_not_found"
    r = client.delete(f"{API}/people/{powell['id']}")
    assert r.json() == {"id": powell["id"], "name": "Powell", "faces_removed": 1}
    assert error_of(client.delete(f"{API}/people/{powell['id']}"), 404) == "person_not_found"
    for face_id in powell["face_ids"]:
        assert client.get(f"{API}/faces/{face_id}/thumbnail").status_code == 404

    blair = enroll(client, "Blair", photos["blair1"]).json()["person"]
    r = client.post(f"{API}/people/{blair['id']}/merge", json={"into": bush["id"]})
    assert r.status_code == 200 and r.json()["faces"] == 3
    assert [p["name"] for p in client.get(f"{API}/people").json()] == ["George W Bush"]
    r = client.post(f"{API}/people/{bush['id']}/merge", json={"into": bush["id"]})
    assert error_of(r, 400) == "invalid_merge"


def test_server_without_a_gallery(small_model, photos):
    from facenet.server import create_app

    with TestClient(create_app(small_model), base_url="http://127.0.0.1") as client:
        assert client.get(f"{API}/health").json()["gallery"] is None
        assert error_of(client.get(f"{API}/people"), 404) == "no_gallery"
        r = client.post(f"{API}/identify", files=files(image=photos["bush1"]))
        assert error_of(r, 404) == "no_gallery"
        r = client.post(
            f"{API}/verify", files=files(image1=photos["bush1"], image2=photos["bush2"])
        )
        assert r.status_code == 200


# -- access -----------------------------------------------------------------------------------


def test_api_key_protects_writes(make_app, photos):
    with TestClient(make_app(api_key="s3cret")) as client:
        assert error_of(enroll(client, "Bush", photos["bush1"]), 401) == "missing_api_key"
        r = enroll(client, "Bush", photos["bush1"], headers={"X-API-Key": "wrong"})
        assert error_of(r, 401) == "invalid_api_key"
        r = enroll(client, "Bush", photos["bush1"], headers={"X-API-Key": "s3cret"})
        assert r.status_code == 201
        person = r.json()["person"]["id"]
        assert error_of(client.delete(f"{API}/people/{person}"), 401) == "missing_api_key"
        assert (
            error_of(client.patch(f"{API}/people/{person}", json={"name": "B"}), 401)
            == "missing_api_key"
        )
        # reads stay open
        assert client.get(f"{API}/people").status_code == 200
        r = client.post(f"{API}/identify", files=files(image=photos["bush1"]))
        assert r.status_code == 200


def test_api_key_all_protects_everything_but_health(make_app, photos):
    with TestClient(make_app(api_key="s3cret", api_key_all=True)) as client:
        assert client.get(f"{API}/health").status_code == 200
        assert client.get("/").status_code == 200  # the page asks for the key itself
        assert error_of(client.get(f"{API}/people"), 401) == "missing_api_key"
        assert error_of(client.get(f"{API}/model"), 401) == "missing_api_key"
        r = client.post(f"{API}/embed", files=files(image=photos["bush1"]))
        assert error_of(r, 401) == "missing_api_key"
        assert client.get(f"{API}/people", headers={"X-API-Key": "s3cret"}).status_code == 200


def test_cors_is_off_by_default(make_app):
    origin = {"Origin": "http://elsewhere.example"}
    with TestClient(make_app()) as client:
        r = client.get(f"{API}/health", headers=origin)
        assert "access-control-allow-origin" not in r.headers
    with TestClient(make_app(cors_origins=("http://elsewhere.example",))) as client:
        r = client.get(f"{API}/health", headers=origin)
        assert r.headers["access-control-allow-origin"] == "http://elsewhere.example"
        r = client.get(f"{API}/health", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in r.headers


def test_settings_are_checked():
    from facenet.server import Settings

    with pytest.raises(ValueError, match="api_key"):
        Settings(api_key_all=True)
    with pytest.raises(ValueError, match="workers"):
        Settings(workers=0)


@pytest.mark.parametrize("key", ["clé", "ключ", " secret", "secret\t", "se\ncret"])
def test_an_api_key_no_client_can_send_is_refused_at_start(key):
    """`--api-key clé`: curl sends the header in UTF-8, the server reads it as Latin-1, so every
    change answered 401 `invalid_api_key` (and a key outside Latin-1, or with spaces around it,
    which HTTP strips, could never be sent at all). Now such a key is a usage error, exit 2."""
    from click.testing import CliRunner

    from facenet.cli import main
    from facenet.server import Settings

    with pytest.raises(ValueError, match="printable ASCII"):
        Settings(api_key=key)
    result = CliRunner().invoke(main, ["serve", "--port", "0", "--api-key", key])
    assert result.exit_code == 2 and "printable ASCII" in result.output, result.output


# -- concurrency ------------------------------------------------------------------------------


class SlowModel:
    """The small model, taking `delay` seconds more per photo (a stand-in for a big model)."""

    def __init__(self, model, delay: float):
        self._model, self.delay = model, delay
        self.model_id, self.info, self.embedder = model.model_id, model.info, model.embedder
        self.embed_crops = model.embed_crops

    @property
    def threshold(self):
        return self._model.threshold

    @property
    def detector(self):
        return self

    def detect(self, image):
        time.sleep(self.delay)
        return self._model.detector.detect(image)


def test_inference_does_not_block_the_event_loop(small_model, photos):
    httpx = pytest.importorskip("httpx")
    from facenet.server import create_app
    from facenet.server.background import BackgroundServer

    app = create_app(SlowModel(small_model, delay=1.5))
    with BackgroundServer(app) as url:
        done = threading.Event()

        def slow_call():
            httpx.post(f"{url}{API}/embed", files=files(image=photos["bush1"]), timeout=30)
            done.set()

        worker = threading.Thread(target=slow_call)
        worker.start()
        time.sleep(0.3)
        start = time.monotonic()
        assert httpx.get(f"{url}{API}/health", timeout=10).status_code == 200
        assert time.monotonic() - start < 1.0 and not done.is_set()
        worker.join(30)
        assert done.is_set()


def test_concurrent_gallery_requests(client, photos):
    """Enrol, identify, list and rename from several threads at once: no error, nothing lost."""
    names = ["Bush", "Powell", "Blair"]
    keys = ["bush1", "powell1", "blair1"]
    errors = []

    def work(i):
        try:
            for response in (
                enroll(client, names[i], photos[keys[i]]),
                client.post(f"{API}/identify", files=files(image=photos["bush2"])),
                client.get(f"{API}/people"),
            ):
                assert response.status_code < 300, response.text
        except Exception as exc:  # collected: assertion errors in threads are otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    people = client.get(f"{API}/people").json()
    assert sorted((p["name"], p["faces"]) for p in people) == [
        ("Blair", 1),
        ("Bush", 1),
        ("Powell", 1),
    ]


def test_the_gallery_answers_while_an_enrolment_is_being_read(client, photos, monkeypatch):
    """Enrolment detects and embeds outside the gallery's lock: reads go on meanwhile."""
    from .people_support import hold_reads

    reading, release = hold_reads(monkeypatch, client.app.state.service.gallery.model)
    answers: dict = {}

    def call(key, function, *args):
        answers[key] = function(*args)

    args = ("enrol", enroll, client, "Bush", photos["bush1"])
    enrolment = threading.Thread(target=call, args=args)
    enrolment.start()
    try:
        assert reading.wait(60)
        read = threading.Thread(target=call, args=("people", client.get, f"{API}/people"))
        read.start()
        read.join(30)
        assert "people" in answers, "a read waited for the enrolment's inference"
        assert answers["people"].status_code == 200 and answers["people"].json() == []
    finally:
        release.set()
        enrolment.join(60)
    assert answers["enrol"].status_code == 201, answers["enrol"].text
    assert [p["name"] for p in client.get(f"{API}/people").json()] == ["Bush"]


# -- command line -----------------------------------------------------------------------------


def test_serve_command_help_and_bad_options(tmp_path):
    from click.testing import CliRunner

    from facenet.cli import main

    runner = CliRunner()
    result = runner.invoke(main, ["serve", "--help"])
    assert result.exit_code == 0
    for option in (
        "--gallery",
        "--api-key",
        "--api-key-all",
        "--cors-origin",
        "--max-upload-mb",
        "--threads",
    ):
        assert option in result.output
    result = runner.invoke(
        main, ["serve", "--api-key-all", "--model", str(tmp_path / "none.keras")]
    )
    assert result.exit_code == 2 and "api_key" in result.output


def _serve_and_stop(command, stop, started="Application startup complete", limit=120.0):
    """Run a server `command`, send it signal `stop` once a stderr line holds `started`, and
    return (its exit status, its stderr after the signal). Each wait is bounded by `limit`
    seconds: a server that hangs starting or stopping fails the test (and is killed) instead
    of hanging it; stderr is read by a thread, so no read blocks on a hung process."""
    import queue
    import subprocess

    server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in server.stderr:
            lines.put(line)
        lines.put(None)  # end of stderr

    threading.Thread(target=read, daemon=True).start()
    before: list[str] = []
    try:
        deadline = time.monotonic() + limit
        while not before or started not in before[-1]:
            try:
                before.append(lines.get(timeout=max(deadline - time.monotonic(), 0)))
            except queue.Empty:
                pytest.fail(f"no {started!r} within {limit:g} s:\n{''.join(before)}")
            if before[-1] is None:
                pytest.fail(f"the server ended before {started!r}:\n{''.join(before[:-1])}")
        server.send_signal(stop)
        try:
            status = server.wait(limit)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {limit:g} s after {stop!r}")
    finally:
        server.kill()
        server.wait()
    after = []
    while (line := lines.get(timeout=limit)) is not None:  # the end comes: the server is gone
        after.append(line)
    return status, "".join(after)


@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM"])
def test_serve_stops_cleanly_with_exit_0_on_ctrl_c_and_sigterm(tmp_path, stop):
    """A server stopped by Ctrl-C (SIGINT) exited 130 with the batch commands' "run the command
    again to resume" line, and by SIGTERM (a service manager's stop) died of the signal (143):
    both are a graceful shutdown now, exit status 0."""
    import signal
    import sys

    gallery = str(tmp_path / "g.db")
    command = [sys.executable, "-m", "facenet", "serve", "--port", "0", "-g", gallery]
    status, rest = _serve_and_stop(command, getattr(signal, stop))
    assert status == 0, rest
    assert "Shutting down" in rest and "interrupted" not in rest and "Traceback" not in rest


@pytest.mark.parametrize("hang", ["starting", "stopping"])
def test_a_hung_server_fails_the_stop_test_in_bounded_time(hang):
    """The stop test read the server's stderr to its end before any timeout, so a server that
    hung (before its startup line, or ignoring the signal) hung the test run. A stand-in
    that hangs either way now fails it within the limit, and is killed."""
    import signal
    import sys

    ready = "" if hang == "starting" else "print('started', file=sys.stderr, flush=True); "
    code = (
        "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        f"{ready}time.sleep(600)"
    )
    begun = time.monotonic()
    with pytest.raises(pytest.fail.Exception, match="within|still running") as failed:
        _serve_and_stop([sys.executable, "-c", code], signal.SIGTERM, "started", limit=3)
    assert time.monotonic() - begun < 30, failed.value
    assert ("no 'started'" if hang == "starting" else "still running") in str(failed.value)


def test_serve_on_a_busy_port_is_a_one_line_error(tmp_path):
    """The socket is bound before the model loads: a port in use is exit status 2 in one line,
    not a "serving on ..." line followed by uvicorn's error and exit status 3."""
    import socket

    from click.testing import CliRunner

    from facenet.cli import main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        result = CliRunner().invoke(main, ["serve", "--port", port, "-g", str(tmp_path / "g.db")])
    assert result.exit_code == 2, result.output
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
    assert "serving" not in result.output and not (tmp_path / "g.db").exists()


def test_serve_on_an_address_it_cannot_bind_prints_no_listening_warning(tmp_path):
    """`--host 192.0.2.1` (an address not on this machine): "warning: listening on 192.0.2.1
    without --api-key ..." came before the error that it cannot listen there. Now the error is
    the only line."""
    from click.testing import CliRunner

    from facenet.cli import main

    args = ["serve", "--host", "192.0.2.1", "--port", "0", "-g", str(tmp_path / "g.db")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith("Error: cannot listen on 192.0.2.1:0: ")


def test_serve_on_a_gallery_that_cannot_be_created_is_one_line(tmp_path, small_model_file):
    """A --gallery path SQLite cannot create (here its "folder" is a file; also an unwritable
    folder): exit status 1 and sqlite3's traceback. Now exit status 2 and one line, nothing
    served and nothing left behind."""
    from click.testing import CliRunner

    from facenet.cli import main

    (tmp_path / "afile").write_text("not a folder")
    gallery = tmp_path / "afile" / "g.db"
    args = ["serve", "--port", "0", "--model", str(small_model_file), "-g", str(gallery)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert f"{gallery}: cannot create gallery" in result.output
    assert "Traceback" not in result.output and "serving" not in result.output
    assert (tmp_path / "afile").read_text() == "not a folder"


def test_serve_loads_the_bundled_model_a_gallery_records_by_name(tmp_path):
    """A gallery made with a bundled model's name (`facenet gallery create g.db --model
    facenet-mobilenet`, or switched to it by a migration that named it): `facenet serve -g g.db`
    loaded the default model instead and refused to start ("this gallery holds embeddings of
    model 'facenet-mobilenet-...'"), though the gallery's recorded model is the documented
    default. Now it serves the recorded one."""
    from facenet import FaceNet
    from facenet.catalog import DEFAULT_MODEL
    from facenet.cli.serve import _model_and_gallery
    from facenet.gallery import Gallery

    assert DEFAULT_MODEL != "facenet-mobilenet"
    Gallery.create(tmp_path / "g.db", FaceNet.load("facenet-mobilenet")).close()
    model, gallery = _model_and_gallery(None, str(tmp_path / "g.db"))
    try:
        assert gallery.model_path == "facenet-mobilenet"
        assert model.model_id == gallery.model_id
    finally:
        gallery.close()


def test_enrol_racing_a_delete_of_the_person_is_409(client, photos, monkeypatch):
    """A DELETE of the person between the enrolment's commit and its answer (the gallery lock is
    not held while photos are read): 409 `gallery_changed`, not 404 "no person with id None"."""
    service = client.app.state.service
    real_enroll = service.gallery.enroll

    def enroll_then_deleted(name, images, **options):
        report = real_enroll(name, images, **options)
        (person,) = [p for p in service._named_people() if p.name == name]
        service.remove_person(person.id)  # what a concurrent DELETE /people/{id} does
        return report

    monkeypatch.setattr(service.gallery, "enroll", enroll_then_deleted)
    assert error_of(enroll(client, "Bush", photos["bush1"]), 409) == "gallery_changed"
    monkeypatch.undo()
    assert client.get(f"{API}/people").json() == []
    assert enroll(client, "Bush", photos["bush1"]).status_code == 201  # enrolled again


def test_a_gallery_switched_while_photos_are_read_is_409_without_the_servers_path(
    client, photos, monkeypatch
):
    """Another process moves the gallery to another model while an upload is being embedded:
    409 `gallery_changed` for an enrolment and a library upload, and the message names no
    server path (the exception's own text, for the command line, names the file)."""
    import sqlite3

    gallery = client.app.state.service.gallery
    real_represent = gallery.model.represent

    def represent_then_switched(image):
        faces = real_represent(image)
        with sqlite3.connect(gallery.path) as db:  # what a migration in another process does
            db.execute("UPDATE meta SET value = 'another-model' WHERE key = 'model_id'")
        return faces

    monkeypatch.setattr(gallery.model, "represent", represent_then_switched)
    uploads = files(images=[photos["bush1"]])
    answers = [
        client.post(f"{API}/people", data={"name": "Bush"}, files=uploads),
        client.post(f"{API}/library/photos", files=uploads),
    ]
    for r in answers:
        assert error_of(r, 409) == "gallery_changed"
        message = r.json()["error"]["message"]
        assert "moved to another model" in message, message
        assert str(gallery.path.parent) not in message and gallery.path.name not in message


def test_name_errors_are_the_documented_ones(client, photos):
    """A name over the schema's 200 characters is 422 `validation_error` like every field out
    of its schema limits; the rest of the name rule is 400 `invalid_name`; docs/server.md says
    the same (it listed "over 200 characters" under 400)."""
    from pathlib import Path

    assert error_of(enroll(client, "x" * 201, photos["bush1"]), 422) == "validation_error"
    assert error_of(enroll(client, "Unknown", photos["bush1"]), 400) == "invalid_name"
    docs = (Path(__file__).resolve().parents[1] / "docs" / "server.md").read_text()
    rows = {
        line.split("|")[1].strip(): line for line in docs.splitlines() if line.startswith("| 4")
    }
    assert "over 200 characters" in rows["422"] and "over 200" not in rows["400"]


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_changes_after_the_gallery_file_is_gone_are_refused(client, gallery, photos, how):
    """The gallery file deleted (or another file put in its place) while the server runs: a
    change went to the open, unlinked file and answered 201, and was lost when the server
    stopped. Now every change is 503 `gallery_missing`; reads still answer."""
    import os
    import shutil

    assert enroll(client, "Ada", photos["bush1"]).status_code == 201
    copy = gallery.path.with_name("copy.db")
    shutil.copyfile(gallery.path, copy)
    for suffix in ("", "-wal", "-shm"):
        gallery.path.with_name(gallery.path.name + suffix).unlink(missing_ok=True)
    if how == "replaced":
        os.replace(copy, gallery.path)

    assert error_of(enroll(client, "Bob", photos["bush2"]), 503) == "gallery_missing"
    r = client.patch(f"{API}/people/1", json={"name": "Eve"})
    assert error_of(r, 503) == "gallery_missing"
    r = client.post(f"{API}/library/photos", files=files(images=photos["bush2"]))
    assert error_of(r, 503) == "gallery_missing"
    assert [p["name"] for p in client.get(f"{API}/people").json()] == ["Ada"]
