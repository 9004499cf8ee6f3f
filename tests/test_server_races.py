"""The server against a hostile or unlucky client: requests racing each other on the same
person, and requests the HTTP layer refuses. Each test pins one defect found by an audit of
the running server (the request, and what it answered before).
"""

from __future__ import annotations

import pytest

from .test_server_support import (  # noqa: F401  (fixtures)
    CLIENT_HEADER,
    client_fixture,
    error_of,
    files,
    gallery_fixture,
    make_app_fixture,
    photos_fixture,
)

pytest.importorskip("fastapi")

API = "/api/v1"


def _enrolled(client, name: str, photo: bytes) -> int:
    r = client.post(f"{API}/people", data={"name": name}, files=files(images=[photo]))
    assert r.status_code == 201, r.text
    return r.json()["person"]["id"]


def _while_photos_are_read(client, monkeypatch, change) -> None:
    """Run `change()` (another request's gallery change) once the next upload's faces are
    found, before they are stored: the gallery lock is not held while photos are read."""
    model = client.app.state.service.gallery.model
    real_represent = model.represent

    def represent_then_changed(image):
        faces = real_represent(image)
        monkeypatch.setattr(model, "represent", real_represent)
        change()
        return faces

    monkeypatch.setattr(model, "represent", represent_then_changed)


@pytest.mark.parametrize("change", ["rename", "delete"])
def test_adding_faces_to_a_person_renamed_or_removed_meanwhile_makes_no_new_person(
    client, photos, monkeypatch, change
):
    """POST /people/{id}/faces racing PATCH or DELETE /people/{id} answered 201 with a new
    person under the old name (another id: the removed person came back, or the renamed one
    got a namesake); it is 409 `gallery_changed`, nothing stored, and no new person."""
    service = client.app.state.service
    person_id = _enrolled(client, "Bush", photos["bush1"])

    def concurrent_change():
        if change == "rename":
            service.rename(person_id, "George")
        else:
            service.remove_person(person_id)

    _while_photos_are_read(client, monkeypatch, concurrent_change)
    r = client.post(f"{API}/people/{person_id}/faces", files=files(images=[photos["bush2"]]))
    assert error_of(r, 409) == "gallery_changed"
    people = {p["name"]: p for p in client.get(f"{API}/people").json()}
    assert "Bush" not in people, people
    assert [p["faces"] for p in people.values()] == ([1] if change == "rename" else [])
    again = client.post(f"{API}/people/{person_id}/faces", files=files(images=[photos["bush2"]]))
    if change == "rename":
        assert again.status_code == 201 and again.json()["person"]["name"] == "George"
    else:
        assert error_of(again, 404) == "person_not_found"


def test_adding_faces_answers_the_person_renamed_after_they_were_stored(client, photos):
    """A rename between the faces' commit and the answer: the faces are the person's, under
    their new name (it was 409 "enrol again", and enrolling again found only duplicates)."""
    service = client.app.state.service
    person_id = _enrolled(client, "Bush", photos["bush1"])
    real_enroll = service.gallery.enroll

    def enroll_then_renamed(name, images, **options):
        report = real_enroll(name, images, **options)
        service.rename(person_id, "George")
        return report

    service.gallery.enroll = enroll_then_renamed
    try:
        r = client.post(f"{API}/people/{person_id}/faces", files=files(images=[photos["bush2"]]))
    finally:
        del service.gallery.enroll
    assert r.status_code == 201, r.text
    assert (r.json()["person"]["id"], r.json()["person"]["name"]) == (person_id, "George")
    assert r.json()["person"]["faces"] == 2


def test_requests_past_threads_wait_before_their_photos_are_read(make_app, photos, monkeypatch):
    """Every request read its photos into memory before queueing for the inference pool, so
    memory grew by the upload's size with every concurrent client (64 clients sending a 9 MB
    photo to identify: 1.3 GB resident, 24 clients: 0.76 GB). Past `--threads` requests in
    flight, a request waits with its upload as the form parser spooled it, unread."""
    import threading

    from fastapi.testclient import TestClient

    from facenet.server import routes

    app = make_app(workers=1)
    service = app.state.service
    entered, release = threading.Event(), threading.Event()
    real_embed, real_probe = service.embed, routes.probe_image
    probed = []

    def blocked_embed(upload):
        entered.set()
        release.wait(30)
        return real_embed(upload)

    def counted_probe(data, *args):
        probed.append(len(data))
        return real_probe(data, *args)

    monkeypatch.setattr(service, "embed", blocked_embed)
    monkeypatch.setattr(routes, "probe_image", counted_probe)
    answers = []
    with TestClient(app) as client:

        def post():
            answers.append(client.post(f"{API}/embed", files=files(image=photos["bush1"])))

        first, second = threading.Thread(target=post), threading.Thread(target=post)
        first.start()
        assert entered.wait(30)
        second.start()
        second.join(1.0)
        assert len(probed) == 1, "the second request read its photo while the first ran"
        release.set()
        first.join(30)
        second.join(30)
    assert [r.status_code for r in answers] == [200, 200], [r.text for r in answers]
    assert len(probed) == 2


def test_an_upload_that_stops_arriving_is_408_not_a_hang(make_app):
    """A client that sends its headers and part of the body, then nothing (a stalled or
    hostile uploader), was waited for without end, its connection and spooled upload held;
    after `body_timeout` seconds without a byte it is 408 `request_timeout`."""
    import asyncio

    app = make_app(body_timeout=0.3)
    body = b'--xx\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n'
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": f"{API}/embed", "raw_path": f"{API}/embed".encode(),
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
        "headers": [
            (b"host", b"testserver"), (b"content-length", b"100000"),
            (b"content-type", b"multipart/form-data; boundary=xx"),
        ],
    }  # fmt: skip
    sent = []

    async def run():
        chunks = [{"type": "http.request", "body": body, "more_body": True}]

        async def receive():
            if chunks:
                return chunks.pop()
            await asyncio.sleep(3600)  # the client sends nothing more

        async def send(message):
            sent.append(message)

        await asyncio.wait_for(app(scope, receive, send), 10)

    asyncio.run(run())
    assert sent[0]["status"] == 408
    assert b'"request_timeout"' in b"".join(m.get("body", b"") for m in sent[1:])
