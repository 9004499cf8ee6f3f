"""The people library over HTTP (issue 19): `/api/v1/library/...` through FastAPI's TestClient,
with the default model (its distances mean something) on real photos (examples/ and LFW).

Each change is checked through the API's own reads, and after every test the library's
stored constraints must all hold (`Library.violations()` is empty). The browser walk-through is
in test_browser_people.py; the Python API and CLI have their own tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from .conftest import lfw_image
from .test_server_support import CLIENT_HEADER, error_of, png_bytes

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

API = "/api/v1"
LIB = f"{API}/library"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
#: examples/ photo -> who it shows (examples/README.md)
EXAMPLE_PEOPLE = {
    "a_1": "Colin_Powell", "a_2": "Colin_Powell", "b_1": "Serena_Williams",
    "b_2": "Serena_Williams", "c_1": "Tony_Blair",
}  # fmt: skip
#: LFW photos added besides the examples: (person, index); one photo only of the last three
LFW_PHOTOS = [
    ("Colin_Powell", 3), ("Colin_Powell", 4), ("Serena_Williams", 3), ("Tony_Blair", 2),
    ("George_W_Bush", 1), ("George_W_Bush", 2), ("George_W_Bush", 3),
    ("Gerhard_Schroeder", 1), ("Jennifer_Aniston", 1), ("Jacques_Chirac", 1),
]  # fmt: skip


def photo_set() -> dict[str, tuple[str, bytes]]:
    """upload file name -> (identity, bytes): the five examples and a few LFW photos."""
    out = {
        f"{k}.jpg": (who, (EXAMPLES / f"{k}.jpg").read_bytes()) for k, who in EXAMPLE_PEOPLE.items()
    }
    for who, index in LFW_PHOTOS:
        path = lfw_image(who, index)
        out[path.name] = (who, path.read_bytes())
    return out


def uploads(photos: dict[str, tuple[str, bytes]], names=None):
    return [
        ("images", (name, photos[name][1], "application/octet-stream"))
        for name in (names or photos)
    ]


@pytest.fixture(scope="module")
def model():
    from facenet import FaceNet

    return FaceNet.load()  # the default model (dlib-resnet)


@pytest.fixture(scope="module")
def photos():
    return photo_set()


@pytest.fixture
def make_app(model, tmp_path):
    """make_app(**settings) -> (app, gallery) over a fresh gallery file; the gallery is closed,
    and the library's constraints checked, after the test."""
    from facenet.gallery import Gallery
    from facenet.server import Settings, create_app

    gallery = Gallery.create(tmp_path / "photos.db", model)
    apps = []

    def make(**settings):
        settings.setdefault("allowed_hosts", ("testserver",))
        app = create_app(model, gallery, Settings(**settings))
        apps.append(app)
        return app

    yield make
    for app in apps:
        service = app.state.service
        if service._library is not None:
            assert service._library.violations() == []
    gallery.close()


@pytest.fixture
def client(make_app):
    with TestClient(make_app(), headers=CLIENT_HEADER) as client:
        yield client


@pytest.fixture
def filled(client, photos):
    """A client whose library holds every photo of `photo_set` (added in one request)."""
    r = client.post(f"{LIB}/photos", files=uploads(photos))
    assert r.status_code == 200, r.text
    client.added = r.json()
    return client


def identities(client, photos) -> dict[int, str]:
    """face id -> identity of its photo (the photo's upload name)."""
    faces = client.get(f"{LIB}/faces", params={"limit": 5000}).json()
    return {f["id"]: photos[f["photo"]][0] for f in faces}


def members(client, person_id: int) -> list[dict]:
    r = client.get(f"{LIB}/people/{person_id}/faces")
    assert r.status_code == 200, r.text
    return r.json()


def state(client) -> dict[int, list[int]]:
    """person id -> its face ids, for everyone listed."""
    people = client.get(f"{LIB}/people").json()
    return {p["id"]: [f["id"] for f in members(client, p["id"])] for p in people}


# -- adding and reading ---------------------------------------------------------------------------


def test_add_photos_then_read_everything_back(filled, photos):
    client, added = filled, filled.added
    assert added["photos"] == len(photos) and added["failed"] == [] and added["duplicates"] == []
    assert added["faces"] == len(added["face_ids"]) >= len(photos)
    assert added["assigned"] + added["unassigned"] <= added["faces"]
    counts = client.get(LIB).json()
    assert counts["faces"] == added["faces"]
    people = client.get(f"{LIB}/people").json()
    assert counts["people"] == len(people) == counts["named"] + counts["clusters"]
    assert counts["named"] == 0 and counts["clusters"] >= 2
    faces = client.get(f"{LIB}/faces").json()
    assert sorted(f["id"] for f in faces) == sorted(added["face_ids"])
    assert {f["photo"] for f in faces} == set(photos)  # the uploads' names
    unassigned = client.get(f"{LIB}/faces", params={"unassigned": True}).json()
    assert counts["unassigned"] == len(unassigned)
    assert all(f["person_id"] is None and f["state"] == "unassigned" for f in unassigned)
    grouped = state(client)
    for person in people:
        assert person["face_count"] == len(grouped[person["id"]]) >= 1
        assert person["cover_face_id"] in grouped[person["id"]]
        one = client.get(f"{LIB}/people/{person['id']}").json()
        assert one == person
    in_people = sorted(f for ids in grouped.values() for f in ids)
    assert sorted(in_people + [f["id"] for f in unassigned]) == sorted(added["face_ids"])
    # every face has a thumbnail, a JPEG cut from the crop kept with it
    for face_id in added["face_ids"]:
        r = client.get(f"{LIB}/faces/{face_id}/thumbnail")
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        assert r.content[:2] == b"\xff\xd8"
    face = client.get(f"{LIB}/faces/{added['face_ids'][0]}").json()
    assert len(face["box"]) == 4 and set(face["quality"]) >= {"eye_px", "score", "blur"}


def test_a_photo_added_on_the_server_machine_is_listed_by_name_only(make_app, model, tmp_path):
    """Faces added from the command line store the server's own path; clients see its name."""
    from facenet.people.library import Library

    from .conftest import lfw_image

    app = make_app()
    Library.from_gallery(app.state.service.gallery).add([lfw_image("Colin_Powell")])
    with TestClient(app, headers=CLIENT_HEADER) as client:
        faces = client.get(f"{LIB}/faces").json()
        one = client.get(f"{LIB}/faces/{faces[0]['id']}").json()
    assert [f["photo"] for f in faces] == [lfw_image("Colin_Powell").name] == [one["photo"]]


def test_an_upload_is_recorded_as_a_label_never_a_path(make_app, photos):
    """An added upload is listed by its file name and recorded as `upload:NAME`: `gallery
    migrate` never opens a file of the upload's name on the server (before, the bare name was
    recorded and taken for a path relative to the migrating process's directory)."""
    from facenet.gallery.reembed import _photo_path

    app = make_app()
    with TestClient(app, headers=CLIENT_HEADER) as client:
        r = client.post(f"{LIB}/photos", files=uploads(photos, ["a_1.jpg"]))
        assert r.status_code == 200 and r.json()["faces"] >= 1, r.text
        again = client.post(f"{LIB}/photos", files=uploads(photos, ["a_1.jpg"])).json()
        assert again["duplicates"] == ["a_1.jpg"] and again["faces"] == 0
        assert {f["photo"] for f in client.get(f"{LIB}/faces").json()} == {"a_1.jpg"}
    rows = app.state.service.gallery._store.db.execute("SELECT * FROM faces").fetchall()
    assert {row["source"] for row in rows} == {"upload:a_1.jpg"}
    assert [_photo_path(row) for row in rows] == [None] * len(rows)


def test_clusters_follow_identities(filled, photos):
    """The default model on these photos: every cluster holds one person, and the people with
    two or more photos are found (the examples' Powell pair among them)."""
    who = identities(filled, photos)
    grouped = state(filled)
    for person_id, faces in grouped.items():
        names = {who[f] for f in faces}
        assert len(names) == 1, (person_id, names)
    found = {who[faces[0]] for faces in grouped.values() if len(faces) >= 2}
    assert {"Colin_Powell", "George_W_Bush"} <= found, found


def test_adding_again_is_a_duplicate_and_new_photos_join_their_people(client, photos):
    first = [n for n in photos if photos[n][0] == "George_W_Bush"][:2]
    r = client.post(f"{LIB}/photos", files=uploads(photos, first))
    assert r.status_code == 200, r.text
    (bush,) = client.get(f"{LIB}/people").json()  # two photos of one man: one cluster
    again = client.post(f"{LIB}/photos", files=uploads(photos, first)).json()
    assert again["faces"] == 0 and sorted(again["duplicates"]) == sorted(first)
    third = [n for n in photos if photos[n][0] == "George_W_Bush"][2]
    later = client.post(f"{LIB}/photos", files=uploads(photos, [third])).json()
    assert later["assigned"] == 1 and later["new_clusters"] == 0 and later["regrouped"] == 0
    assert client.get(f"{LIB}/people/{bush['id']}").json()["face_count"] == bush["face_count"] + 1


def test_the_library_answers_while_an_upload_is_being_read(client, photos, monkeypatch):
    """Detection and embedding of an upload hold no lock: the page's reads go on meanwhile."""
    import threading

    from .people_support import hold_reads

    reading, release = hold_reads(monkeypatch, client.app.state.service.gallery.model)
    answers: dict = {}

    def call(key, method, *args, **kwargs):
        answers[key] = getattr(client, method)(*args, **kwargs)

    name = next(iter(photos))
    upload = threading.Thread(target=call, args=("add", "post", f"{LIB}/photos"),
                              kwargs={"files": uploads(photos, [name])})  # fmt: skip
    upload.start()
    try:
        assert reading.wait(60)
        read = threading.Thread(target=call, args=("counts", "get", LIB))
        read.start()
        read.join(30)
        assert "counts" in answers, "a read waited for the upload's inference"
        assert answers["counts"].status_code == 200 and answers["counts"].json()["faces"] == 0
    finally:
        release.set()
        upload.join(60)
    assert answers["add"].status_code == 200, answers["add"].text
    assert answers["add"].json()["photos"] == 1
    assert client.get(LIB).json()["faces"] == answers["add"].json()["faces"] >= 1


# -- corrections ----------------------------------------------------------------------------------


def test_name_merge_split_move_reject(filled, photos):
    client = filled
    who = identities(client, photos)
    grouped = state(client)
    powell = next(p for p, faces in grouped.items() if who[faces[0]] == "Colin_Powell")
    r = client.patch(f"{LIB}/people/{powell}", json={"name": "Colin Powell"})
    assert r.status_code == 200 and r.json()["name"] == "Colin Powell"
    assert [p["id"] for p in client.get(f"{LIB}/people", params={"named": True}).json()] == [powell]
    other = next(p for p in grouped if p != powell)
    r = client.patch(f"{LIB}/people/{other}", json={"name": "Colin Powell"})
    assert error_of(r, 400) == "invalid_name"  # taken: merge instead
    r = client.patch(f"{LIB}/people/{other}", json={"name": "bad\x1bname"})
    assert error_of(r, 400) == "invalid_name"

    # split the Powell faces in two, then merge the halves back
    faces = grouped[powell]
    r = client.post(f"{LIB}/people/{powell}/split", json={"faces": faces[:1]})
    assert r.status_code == 200, r.text
    split = r.json()
    assert split["person"]["name"] is None and split["person"]["face_count"] == 1
    assert split["rest"]["id"] == powell and split["rest"]["face_count"] == len(faces) - 1
    cannot = [c for c in client.get(f"{LIB}/constraints").json() if c["kind"] == "cannot"]
    assert {(c["face_a"], c["face_b"]) for c in cannot} >= {tuple(sorted((faces[0], faces[1])))}
    r = client.post(f"{LIB}/recluster")
    assert r.status_code == 200 and r.json()["faces"] >= 1
    assert [f["id"] for f in members(client, split["person"]["id"])] == faces[:1]  # kept apart
    listed = {p["id"]: p["face_count"] for p in client.get(f"{LIB}/people").json()}
    assert listed[split["person"]["id"]] == 1 and 0 not in listed.values()
    r = client.post(f"{LIB}/merge", json={"people": [split["person"]["id"], powell]})
    assert r.status_code == 200, r.text
    assert r.json()["id"] == powell and r.json()["face_count"] == len(faces)  # the named survives
    assert error_of(client.get(f"{LIB}/people/{split['person']['id']}"), 404) == "person_not_found"

    # move a face out (to nobody), then reject another as "not a face"
    r = client.post(f"{LIB}/faces/{faces[0]}/move", json={"person": None})
    assert r.json()["state"] == "unassigned" and r.json()["assigned_by"] == "user"
    r = client.post(f"{LIB}/faces/{faces[1]}/reject", json={"reason": "not_a_face"})
    assert r.json()["state"] == "rejected" and r.json()["rejected"] == "not_a_face"
    assert client.post(f"{LIB}/recluster").status_code == 200
    assert client.get(f"{LIB}/faces/{faces[0]}").json()["person_id"] != powell  # stuck
    assert client.get(f"{LIB}/faces/{faces[1]}").json()["state"] == "rejected"
    kinds = {c["kind"] for c in client.get(f"{LIB}/constraints").json()}
    assert kinds >= {"must", "cannot", "reject", "name"}
    # and undone: the rejection, then the links of the moved face to a Powell face
    r = client.post(f"{LIB}/faces/{faces[1]}/unreject")
    assert r.status_code == 200 and r.json()["state"] == "unassigned"
    r = client.post(f"{LIB}/faces/{faces[1]}/unreject")  # twice: no longer rejected
    assert error_of(r, 400) == "library_error" and "not rejected" in r.json()["error"]["message"]
    r = client.post(f"{LIB}/unlink", json={"faces": [faces[0], faces[2]]})
    assert r.status_code == 200 and r.json()["removed"] >= 1
    pairs = {(c["face_a"], c["face_b"]) for c in client.get(f"{LIB}/constraints").json()}
    assert tuple(sorted((faces[0], faces[2]))) not in pairs
    # a cluster emptied by a correction is not listed (nor counted)
    single = client.post(f"{LIB}/people/{powell}/split", json={"faces": [faces[3]]}).json()
    client.post(f"{LIB}/faces/{faces[3]}/move", json={"person": None})  # the cluster is empty:
    assert single["person"]["id"] not in [p["id"] for p in client.get(f"{LIB}/people").json()]
    assert client.get(LIB).json()["people"] == len(client.get(f"{LIB}/people").json())


def test_links_and_suggestions(filled, photos):
    client = filled
    who = identities(client, photos)
    grouped = state(client)
    bush = next(p for p, faces in grouped.items() if who[faces[0]] == "George_W_Bush")
    face = grouped[bush][0]
    # take one face out: it is cannot-linked to Bush now, so never suggested for him
    client.post(f"{LIB}/faces/{face}/move", json={"person": None})
    assert face not in [s["face_id"] for s in client.get(f"{LIB}/people/{bush}/suggestions").json()]
    r = client.post(f"{LIB}/links", json={"kind": "must", "faces": [face, grouped[bush][1]]})
    assert error_of(r, 400) == "invalid_link"  # contradicts the cannot-link the move made
    # an unassigned face of someone else: declined, then never suggested again
    stranger = next(f["id"] for f in client.get(f"{LIB}/faces", params={"unassigned": True}).json()
                    if who[f["id"]] != "George_W_Bush")  # fmt: skip
    r = client.post(f"{LIB}/people/{bush}/decline", json={"face": stranger})
    assert r.status_code == 200 and r.json()["person_id"] is None
    suggested = client.get(f"{LIB}/people/{bush}/suggestions", params={"k": 100}).json()
    assert stranger not in [s["face_id"] for s in suggested]
    assert [s["distance"] for s in suggested] == sorted(s["distance"] for s in suggested)
    # accept: the face joins him (must-link), and stays through a re-clustering
    other = client.post(f"{LIB}/links", json={"kind": "cannot", "faces": [face, stranger]})
    assert other.status_code == 201 and other.json()["kind"] == "cannot"
    newcomer = next(f["id"] for f in client.get(f"{LIB}/faces", params={"unassigned": True}).json()
                    if f["id"] not in (face, stranger))  # fmt: skip
    r = client.post(f"{LIB}/people/{bush}/accept", json={"face": newcomer})
    assert r.status_code == 200 and r.json()["person_id"] == bush
    client.post(f"{LIB}/recluster")
    assert client.get(f"{LIB}/faces/{newcomer}").json()["person_id"] == bush


def test_errors_are_one_line_with_a_code(filled, photos, model):
    client = filled
    some_face = filled.added["face_ids"][0]
    assert error_of(client.get(f"{LIB}/people/999999"), 404) == "person_not_found"
    assert error_of(client.get(f"{LIB}/faces/999999"), 404) == "face_not_found"
    assert error_of(client.get(f"{LIB}/faces/999999/thumbnail"), 404) == "thumbnail_not_found"
    assert error_of(client.get(f"{LIB}/people/999999/suggestions"), 404) == "person_not_found"
    r = client.post(f"{LIB}/merge", json={"people": [999998, 999999]})
    assert error_of(r, 404) == "person_not_found"
    assert error_of(client.post(f"{LIB}/merge", json={"people": [1]}), 422) == "validation_error"
    r = client.post(f"{LIB}/faces/{some_face}/move", json={"person": 999999})
    assert error_of(r, 404) == "person_not_found"
    r = client.post(f"{LIB}/faces/{some_face}/reject", json={"reason": "because"})
    assert error_of(r, 422) == "validation_error"
    r = client.post(f"{LIB}/links", json={"kind": "maybe", "faces": [1, 2]})
    assert error_of(r, 422) == "validation_error"
    one = client.get(f"{LIB}/people").json()[0]["id"]
    everything = [f["id"] for f in members(client, one)]
    r = client.post(f"{LIB}/people/{one}/split", json={"faces": everything})
    assert error_of(r, 400) == "invalid_split"  # nothing would be left
    for path in ("/faces/0", "/people/-1", f"/faces/{2**63}"):
        assert error_of(client.get(LIB + path), 422) == "validation_error"
    # uploads: checked as every upload is (content, size, count)
    r = client.post(f"{LIB}/photos", files=[("images", ("x.jpg", b"not a photo", "image/jpeg"))])
    assert error_of(r, 415) == "not_an_image"
    blank = png_bytes(np.full((120, 160, 3), 128, np.uint8))
    r = client.post(f"{LIB}/photos", files=[("images", ("grey.png", blank, "image/png"))])
    assert r.status_code == 200 and r.json()["faces"] == 0 and r.json()["photos"] == 1


def test_not_found_is_told_by_the_error_type_not_its_wording(client, monkeypatch):
    """404 for `LibraryNotFoundError` whatever it says; 400 for another refusal, even one that
    reads like a not-found."""
    from facenet.errors import LibraryError, LibraryNotFoundError
    from facenet.people import Library

    def gone(self, person_id):
        raise LibraryNotFoundError(f"person {person_id} was deleted meanwhile", "person")

    def refused(self, person_id):
        raise LibraryError("no person may be shown right now")

    monkeypatch.setattr(Library, "person", gone)
    assert error_of(client.get(f"{LIB}/people/5"), 404) == "person_not_found"
    monkeypatch.setattr(Library, "person", refused)
    assert error_of(client.get(f"{LIB}/people/5"), 400) == "library_error"


def test_a_bad_library_threshold_leaves_the_served_gallery_open(make_app):
    """A gallery file recording an invalid people threshold: the library endpoints answer a
    one-line error, and the server's gallery (which the library does not own) stays open."""
    app = make_app()
    gallery = app.state.service.gallery
    with gallery._store.transaction() as db:
        gallery._store.set_meta(db, {"people_threshold": 9})
    with TestClient(app, headers=CLIENT_HEADER) as client:
        r = client.get(f"{LIB}/people")
        assert error_of(r, 400) == "gallery_error"
        assert client.get(f"{API}/people").status_code == 200  # the gallery is still open
        assert client.get(f"{LIB}/people").status_code == 400
        assert "people threshold must be in (0, 4]" in r.json()["error"]["message"]


def test_library_settings_changed_by_another_process_are_used_at_once(make_app, photos):
    """`facenet library settings` beside a running server: its next recluster uses them, no
    restart; an invalid value written meanwhile answers the one-line error naming the repair."""
    import sqlite3

    from click.testing import CliRunner

    from facenet.cli import main

    app = make_app()
    path = app.state.service.gallery.path

    def settings(*args):
        result = CliRunner().invoke(main, ["library", "settings", str(path), *args])
        assert result.exit_code == 0, result.output

    def clusters() -> int:
        assert client.post(f"{LIB}/recluster").status_code == 200
        return client.get(LIB).json()["clusters"]

    with TestClient(app, headers=CLIENT_HEADER) as client:
        names = [f"{k}.jpg" for k in EXAMPLE_PEOPLE]  # two photos of two people, one of one
        assert client.post(f"{LIB}/photos", files=uploads(photos, names)).status_code == 200
        assert clusters() >= 1
        settings("--min-faces", "5")
        assert clusters() == 0
        with sqlite3.connect(path) as db:
            db.execute("UPDATE meta SET value = '2.5' WHERE key = 'people_min_faces'")
        db.close()
        r = client.post(f"{LIB}/recluster")
        assert error_of(r, 400) == "library_error"
        assert f"facenet library settings {path} --min-faces N" in r.json()["error"]["message"]
        settings("--min-faces", "2")
        assert clusters() >= 1


def test_upload_limits(make_app, photos):
    names = list(photos)[:3]
    with TestClient(make_app(max_files=2), headers=CLIENT_HEADER) as client:
        r = client.post(f"{LIB}/photos", files=uploads(photos, names))
        assert error_of(r, 413) == "too_many_files"
    with TestClient(make_app(max_upload_mb=0.01), headers=CLIENT_HEADER) as client:
        r = client.post(f"{LIB}/photos", files=uploads(photos, names))
        assert error_of(r, 413) == "payload_too_large"
        assert client.get(LIB).json()["faces"] == 0


def test_no_gallery_no_library(model):
    from facenet.server import Settings, create_app

    app = create_app(model, None, Settings(allowed_hosts=("testserver",)))
    with TestClient(app, headers=CLIENT_HEADER) as client:
        assert error_of(client.get(f"{LIB}/people"), 404) == "no_library"
        assert error_of(client.post(f"{LIB}/recluster"), 404) == "no_library"


def test_gallery_endpoints_see_only_named_people(filled, photos):
    """The library lives in the gallery file: its named people are gallery people (identify
    finds them); its unnamed clusters and unassigned faces are not."""
    client = filled
    who = identities(client, photos)
    grouped = state(client)
    bush = next(p for p, faces in grouped.items() if who[faces[0]] == "George_W_Bush")
    assert client.get(f"{API}/people").json() == []
    assert error_of(client.get(f"{API}/people/{bush}"), 404) == "person_not_found"
    unassigned = client.get(f"{LIB}/faces", params={"unassigned": True}).json()[0]["id"]
    for face in (grouped[bush][0], unassigned):  # not the gallery's to delete
        assert error_of(client.delete(f"{API}/faces/{face}"), 404) == "face_not_found"
    client.patch(f"{LIB}/people/{bush}", json={"name": "George W Bush"})
    listed = client.get(f"{API}/people").json()
    assert [(p["name"], p["faces"]) for p in listed] == [("George W Bush", len(grouped[bush]))]
    name = next(n for n in photos if photos[n][0] == "George_W_Bush")
    r = client.post(f"{API}/identify", files=[("image", (name, photos[name][1]))])
    assert r.status_code == 200 and r.json()["faces"][0]["name"] == "George W Bush"
    r = client.delete(f"{API}/faces/{grouped[bush][0]}")  # a named person's face: it is
    assert r.status_code == 200 and r.json()["person"] == "George W Bush"
    assert client.get(f"{LIB}/people/{bush}").json()["face_count"] == len(grouped[bush]) - 1


# -- security: the rules of every other change ----------------------------------------------------

#: (method, path, JSON body) of every change; {person}, {other} and {face} are filled in.
CHANGES = [
    ("POST", "/recluster", None),
    ("PATCH", "/people/{person}", {"name": "Mallory"}),
    ("POST", "/merge", {"people": ["{person}", "{other}"]}),
    ("POST", "/people/{person}/split", {"faces": ["{face}"]}),
    ("POST", "/faces/{face}/move", {"person": None}),
    ("POST", "/faces/{face}/reject", {"reason": "ignore"}),
    ("POST", "/links", {"kind": "cannot", "faces": ["{face}", "{stranger}"]}),
    ("POST", "/people/{person}/accept", {"face": "{stranger}"}),
    ("POST", "/people/{person}/decline", {"face": "{stranger}"}),
    ("POST", "/unlink", {"faces": ["{face}", "{stranger}"]}),
    ("POST", "/faces/{face}/unreject", None),
]


def _fill(value, ids: dict):
    if isinstance(value, str):
        return (
            ids[value[1:-1]]
            if value.startswith("{") and value[1:-1] in ids
            else value.format(**ids)
        )
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


def _targets(client) -> dict:
    people = [p for p in client.get(f"{LIB}/people").json() if p["face_count"] >= 2]
    person, other = people[0]["id"], people[1]["id"]
    face = members(client, person)[0]["id"]
    stranger = client.get(f"{LIB}/faces", params={"unassigned": True}).json()[0]["id"]
    return {"person": person, "other": other, "face": face, "stranger": stranger}


def test_changes_refused_from_other_origins_and_forms(filled, photos):
    """Each change: 403 cross_origin from another site's page, 403 missing_client_header as a
    form could send it; nothing changed; the same request from the page works."""
    client = filled
    ids = _targets(client)
    before = (state(client), client.get(f"{LIB}/constraints").json())
    bare = TestClient(client.app)  # no client header
    name = next(iter(photos))
    for method, path, body in CHANGES:
        url, body = LIB + _fill(path, ids), _fill(body, ids)
        r = client.request(method, url, json=body, headers={"Origin": "http://evil.example"})
        assert error_of(r, 403) == "cross_origin", (method, path)
        r = bare.request(method, url, content=b"" if body is None else str(body).encode(),
                         headers={"Content-Type": "text/plain"})  # fmt: skip
        assert error_of(r, 403) == "missing_client_header", (method, path)
    r = client.post(f"{LIB}/photos", files=uploads(photos, [name]), headers={"Origin": "null"})
    assert error_of(r, 403) == "cross_origin"
    r = bare.post(f"{LIB}/photos", files=uploads(photos, [name]))
    assert error_of(r, 403) == "missing_client_header"
    assert (state(client), client.get(f"{LIB}/constraints").json()) == before
    r = client.patch(f"{LIB}/people/{ids['person']}", json={"name": "Ok"},
                     headers={"Origin": "http://testserver"})  # fmt: skip
    assert r.status_code == 200


def test_api_key_guards_changes_and_with_key_all_reads(make_app, photos):
    key = {"X-API-Key": "s3cret"}
    name = next(iter(photos))
    with TestClient(make_app(api_key="s3cret")) as client:
        r = client.post(f"{LIB}/photos", files=uploads(photos, [name]), headers=CLIENT_HEADER)
        assert error_of(r, 401) == "missing_api_key"
        r = client.post(f"{LIB}/photos", files=uploads(photos, [name]), headers=key)
        assert r.status_code == 200 and r.json()["faces"] == 1
        face = r.json()["face_ids"][0]
        assert error_of(client.post(f"{LIB}/recluster", headers=CLIENT_HEADER), 401) == (
            "missing_api_key"
        )
        r = client.post(f"{LIB}/faces/{face}/reject", json={"reason": "ignore"},
                        headers={"X-API-Key": "wrong"})  # fmt: skip
        assert error_of(r, 401) == "invalid_api_key"
        assert client.get(f"{LIB}/faces/{face}").json()["state"] == "unassigned"  # reads open
    with TestClient(make_app(api_key="s3cret", api_key_all=True)) as client:
        for path in ("", "/people", "/faces", f"/faces/{face}", f"/faces/{face}/thumbnail"):
            assert error_of(client.get(LIB + path), 401) == "missing_api_key", path
            assert client.get(LIB + path, headers=key).status_code == 200, path
