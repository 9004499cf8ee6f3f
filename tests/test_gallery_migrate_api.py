"""`/api/v1/gallery/migrate`: a background job that moves the served gallery to another model
(dry run, switch, rollback), with status; and the CLI's `facenet gallery migrate` on real models."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from facenet.cli import main

from .test_server_support import files, local_client, photo_path, photos_fixture  # noqa: F401

pytest.importorskip("fastapi")

API = "/api/v1"


def wait(client, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"{API}/gallery/migrate").json()
        if job["state"] != "running":
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.1)


def test_migration_job_dry_run_switch_and_rollback(
    tmp_path, small_model, small_model_file, second_model_file, photos
):
    from facenet import FaceNet
    from facenet.gallery import Gallery
    from facenet.server import Settings, create_app

    second = FaceNet.load(second_model_file)
    gallery = Gallery.create(tmp_path / "g.db", small_model)
    app = create_app(small_model, gallery, Settings())
    with local_client(app) as client:
        assert client.get(f"{API}/gallery/migrate").json()["state"] == "idle"
        for name, keys in (("Bush", ["bush1", "bush2"]), ("Powell", ["powell1"])):
            r = client.post(
                f"{API}/people", data={"name": name}, files=files(images=[photos[k] for k in keys])
            )
            assert r.status_code == 201, r.text

        outside = tmp_path / "elsewhere.keras"
        shutil.copy(second_model_file, outside)
        r = client.post(f"{API}/gallery/migrate", json={"model": str(outside)})
        assert r.status_code == 400 and r.json()["error"]["code"] == "model_not_allowed"
        assert client.post(f"{API}/gallery/migrate", json={}).status_code == 400

        r = client.post(
            f"{API}/gallery/migrate", json={"model": str(second_model_file), "dry_run": True}
        )
        assert r.status_code == 202 and r.json()["state"] == "running"
        job = wait(client)
        assert job["state"] == "done", job
        assert job["report"]["faces"] == job["total"] == job["done"] == 3
        assert job["report"]["reembedded_from_crop"] == 3  # uploads: no photo file, the crop
        assert client.get(f"{API}/health").json()["model_id"] == small_model.model_id

        r = client.post(f"{API}/gallery/migrate", json={"model": str(second_model_file)})
        assert wait(client)["state"] == "done"
        assert client.get(f"{API}/health").json()["model_id"] == second.model_id
        assert client.get(f"{API}/model").json()["embedding_size"] == 64
        r = client.post(f"{API}/identify", files=files(image=photos["powell1"]))
        best = min(r.json()["faces"], key=lambda f: f["distance"])
        assert best["matches"][0]["name"] == "Powell" and best["distance"] < 0.01
        people = client.get(f"{API}/people").json()
        assert [(p["name"], p["faces"]) for p in people] == [("Bush", 2), ("Powell", 1)]

        r = client.post(f"{API}/gallery/migrate", json={"rollback": True})
        assert r.status_code == 202 and wait(client)["state"] == "done"
        assert client.get(f"{API}/health").json()["model_id"] == small_model.model_id
    app.state.service.gallery.close()


def test_cli_migrate_dry_run_json_then_switch_and_rollback(
    tmp_path, small_model_file, second_model_file, lfw_dir
):
    path = tmp_path / "g.db"
    run = CliRunner().invoke
    assert (
        run(main, ["gallery", "create", str(path), "--model", str(small_model_file)]).exit_code == 0
    )
    photos = [photo_path(k) for k in ("bush1", "bush2", "powell1")]
    copies = []
    for photo in photos:
        copies.append(tmp_path / photo.name)
        shutil.copy(photo, copies[-1])
    assert (
        run(
            main, ["gallery", "enroll", str(path), "--name", "Bush", *map(str, copies[:2])]
        ).exit_code
        == 0
    )
    assert (
        run(main, ["gallery", "enroll", str(path), "--name", "Powell", str(copies[2])]).exit_code
        == 0
    )
    listed = run(main, ["gallery", "list", str(path), "--faces", "--json"]).stdout.splitlines()
    faces = [f for line in listed for f in json.loads(line)["face_list"]]
    assert [f["photo"] for f in faces] == [str(c.resolve()) for c in copies]
    assert all(len(f["landmarks"]) == 5 and len(f["content_hash"]) == 64 for f in faces)
    copies[0].unlink()  # a photo gone: re-embedded from its stored crop

    args = ["gallery", "migrate", str(path), "--model", str(second_model_file)]
    result = run(main, [*args, "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert (report["faces"], report["reembedded_from_crop"], report["flagged"]) == (3, 1, 0)
    assert "is missing" in report["from_crop"][0]["note"]

    result = run(main, args)
    assert result.exit_code == 0 and "nearest person changes for" in result.stdout
    result = run(main, ["gallery", "list", str(path)])
    assert "test-second" in result.stderr
    assert run(main, ["gallery", "migrate", str(path), "--rollback"]).exit_code == 0
    result = run(main, ["gallery", "list", str(path)])
    assert "test-small" in result.stderr
    assert run(main, ["gallery", "migrate", str(path)]).exit_code == 2
    result = run(main, ["gallery", "migrate", str(path), "--prune"])
    assert result.exit_code == 0 and "pruned 3" in result.stderr
    result = run(main, ["gallery", "migrate", str(path), "--rollback"])
    assert result.exit_code == 2 and "nothing to roll back" in result.output


def test_an_upload_between_the_switch_and_the_servers_reopen_is_refused(
    tmp_path, small_model, second_model_file, photos, monkeypatch
):
    """The migration job switches the database, then reopens the server's gallery: an
    enrolment stored in between would keep the old model's embedding (never matched). It is
    refused with 409 `gallery_changed`, and goes through once the server has switched."""
    from facenet.gallery import Gallery
    from facenet.server import Settings, create_app, migration

    switches = []
    monkeypatch.setattr(migration, "switch_server", lambda *args: switches.append(args))
    gallery = Gallery.create(tmp_path / "g.db", small_model)
    app = create_app(small_model, gallery, Settings())
    with local_client(app) as client:
        enrol = {"data": {"name": "Bush"}, "files": files(images=[photos["bush1"]])}
        assert client.post(f"{API}/people", **enrol).status_code == 201
        r = client.post(f"{API}/gallery/migrate", json={"model": str(second_model_file)})
        assert r.status_code == 202 and wait(client)["state"] == "done" and switches
        enrol = {"data": {"name": "Powell"}, "files": files(images=[photos["powell1"]])}
        r = client.post(f"{API}/people", **enrol)
        assert r.status_code == 409 and r.json()["error"]["code"] == "gallery_changed", r.text
        monkeypatch.undo()
        migration.switch_server(*switches[0])
        enrol = {"data": {"name": "Powell"}, "files": files(images=[photos["powell1"]])}
        assert client.post(f"{API}/people", **enrol).status_code == 201
        people = client.get(f"{API}/people").json()
        assert [(p["name"], p["faces"]) for p in people] == [("Bush", 1), ("Powell", 1)]
    app.state.service.gallery.close()


def test_a_migration_the_job_would_refuse_is_400_up_front(
    tmp_path, small_model, small_model_file, photos
):
    """The model already in use, or no such model: 400 `invalid_migration` at once (it was 202,
    then a failed job and a traceback in the log), even while another job runs."""
    from facenet.gallery import Gallery
    from facenet.server import Settings, create_app
    from facenet.server.migration import Job

    gallery = Gallery.create(tmp_path / "g.db", small_model)
    app = create_app(small_model, gallery, Settings())
    with local_client(app) as client:
        enrol = {"data": {"name": "Bush"}, "files": files(images=[photos["bush1"]])}
        assert client.post(f"{API}/people", **enrol).status_code == 201
        for body in ({"model": str(small_model_file)}, {"model": "no-such-model"}):
            r = client.post(f"{API}/gallery/migrate", json=body)
            assert r.status_code == 400, r.text
            assert r.json()["error"]["code"] == "invalid_migration"
        assert client.get(f"{API}/gallery/migrate").json()["state"] == "idle"  # no job
        app.state.migration = Job(state="running")  # a job in progress
        r = client.post(f"{API}/gallery/migrate", json={"model": str(small_model_file)})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_migration"
    app.state.service.gallery.close()


def test_a_rollback_with_nothing_to_roll_back_is_400_up_front(tmp_path, small_model):
    """A gallery never switched has no previous model: rollback was 202, then a failed job; it
    is 400 `invalid_migration` at once, one line, and no job is started."""
    from facenet.gallery import Gallery
    from facenet.server import Settings, create_app

    gallery = Gallery.create(tmp_path / "g.db", small_model)
    app = create_app(small_model, gallery, Settings())
    with local_client(app) as client:
        r = client.post(f"{API}/gallery/migrate", json={"rollback": True})
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["code"] == "invalid_migration" and "nothing to roll back" in error["message"]
        assert "\n" not in error["message"] and str(tmp_path) not in error["message"]
        assert client.get(f"{API}/gallery/migrate").json()["state"] == "idle"  # no job
    app.state.service.gallery.close()


def test_a_rollback_to_a_model_that_is_not_the_previous_one_is_400_up_front(
    tmp_path, small_model, small_model_file, second_model_file
):
    """`{"rollback": true, "model": M}` with M not the model used before the switch was 202,
    then a failed job; it is 400 `invalid_migration` at once, one line naming the previous
    model, and no job is started. The previous model itself still rolls back."""
    from facenet import FaceNet
    from facenet.gallery import Gallery
    from facenet.gallery import migrate as m
    from facenet.server import Settings, create_app

    path = tmp_path / "g.db"
    with Gallery.create(path, small_model, str(small_model_file)) as gallery:
        gallery.enroll("A", [Path(__file__).resolve().parents[1] / "examples" / "a_1.jpg"])
    second = FaceNet.load(second_model_file)
    m.migrate(path, m.Target.of(second, str(second_model_file)))  # switched: small is previous
    app = create_app(second, Gallery.open(path, second), Settings())
    with local_client(app) as client:
        for model in (str(second_model_file), second_model_file.name):
            r = client.post(f"{API}/gallery/migrate", json={"rollback": True, "model": model})
            assert r.status_code == 400, r.text
            error = r.json()["error"]
            assert error["code"] == "invalid_migration", error
            assert "not the previous model" in error["message"] and "test-small" in error["message"]
            assert "\n" not in error["message"] and str(tmp_path) not in error["message"]
        assert client.get(f"{API}/gallery/migrate").json()["state"] == "idle"  # no job
        body = {"rollback": True, "model": str(small_model_file)}
        r = client.post(f"{API}/gallery/migrate", json=body)
        assert r.status_code == 202 and wait(client)["state"] == "done", r.text
        assert client.get(f"{API}/health").json()["model_id"] == small_model.model_id
    app.state.service.gallery.close()


def test_the_server_job_refuses_a_switch_that_would_flag_every_face(
    tmp_path, small_model, second_model_file, caplog
):
    """Ready embeddings only: the job fails with the one-line reason (logged without a
    traceback; reported without the gallery's path) and the server keeps serving the gallery on
    its model."""
    import numpy as np

    from facenet.gallery import Gallery
    from facenet.server import Settings, create_app

    gallery = Gallery.create(tmp_path / "g.db", small_model)
    size = small_model.info.embedding_size
    for person, seed in (("Ann", 1), ("Bob", 2)):
        gallery.add_embeddings(person, np.random.default_rng(seed).standard_normal(size))
    app = create_app(small_model, gallery, Settings())
    with local_client(app) as client:
        r = client.post(f"{API}/gallery/migrate", json={"model": str(second_model_file)})
        assert r.status_code == 202, r.text
        job = wait(client)
        assert job["state"] == "failed" and "not one of the 2 faces" in job["error"], job
        assert str(tmp_path) not in job["error"]  # the server's path is no client's business
        assert client.get(f"{API}/health").json()["model_id"] == small_model.model_id
    assert not [r for r in caplog.records if r.exc_info]  # a user error: no traceback
    app.state.service.gallery.close()


def test_a_model_file_named_without_its_folder_is_the_one_beside_the_servers_model(
    tmp_path, small_model, second_model_file, photos, monkeypatch
):
    """The page's "Move to model" line takes a file name: `second.keras`, beside the server's
    model, was resolved against the server's working directory and refused as "not a model file
    beside the server's model". Now a relative name is looked up beside the server's model (and
    the bundled ones); one that climbs out of that folder is still refused."""
    from facenet.gallery import Gallery
    from facenet.server import Settings, create_app

    monkeypatch.chdir(tmp_path)  # a working directory without the model
    shutil.copy(second_model_file, tmp_path / "elsewhere.keras")
    gallery = Gallery.create(tmp_path / "g.db", small_model)
    app = create_app(small_model, gallery, Settings())
    with local_client(app) as client:
        enrol = {"data": {"name": "Bush"}, "files": files(images=[photos["bush1"]])}
        assert client.post(f"{API}/people", **enrol).status_code == 201
        for name in ("elsewhere.keras", f"../{tmp_path.name}/elsewhere.keras"):
            r = client.post(f"{API}/gallery/migrate", json={"model": name, "dry_run": True})
            assert r.status_code == 400 and r.json()["error"]["code"] == "model_not_allowed"
        body = {"model": second_model_file.name, "dry_run": True}
        r = client.post(f"{API}/gallery/migrate", json=body)
        assert r.status_code == 202, r.text
        assert r.json()["model"] == str(second_model_file.resolve())
        assert wait(client)["state"] == "done"
    app.state.service.gallery.close()


def test_a_migration_to_a_calibrated_copy_of_the_gallerys_model_is_400_up_front(
    tmp_path, small_model, calibrated_model_file, photos
):
    """A calibrated copy makes the gallery's embeddings: the job refused it at once (202, then a
    failed job whose error held the gallery's path). It is 400 `invalid_migration`, one line
    without a path, and no job is started; dry run or not."""
    from facenet.gallery import Gallery
    from facenet.server import Settings, create_app

    gallery = Gallery.create(tmp_path / "g.db", small_model)
    app = create_app(small_model, gallery, Settings())
    with local_client(app) as client:
        enrol = {"data": {"name": "Bush"}, "files": files(images=[photos["bush1"]])}
        assert client.post(f"{API}/people", **enrol).status_code == 201
        for dry_run in (True, False):
            body = {"model": calibrated_model_file.name, "dry_run": dry_run}
            r = client.post(f"{API}/gallery/migrate", json=body)
            assert r.status_code == 400, r.text
            error = r.json()["error"]
            assert error["code"] == "invalid_migration" and "same embeddings" in error["message"]
            assert "\n" not in error["message"] and "/" not in error["message"]
        r = client.post(f"{API}/gallery/migrate", json={"model": str(calibrated_model_file)})
        assert r.status_code == 400 and str(tmp_path) not in r.text
        r = client.post(f"{API}/gallery/migrate", json={"model": str(small_model.source)})
        assert r.status_code == 400 and "already uses" in r.text and "/" not in r.text
        assert client.get(f"{API}/gallery/migrate").json()["state"] == "idle"  # no job
    app.state.service.gallery.close()


def test_a_rollback_takes_a_calibrated_copy_of_the_previous_model(
    tmp_path, small_model, small_model_file, calibrated_model_file, second_model_file, photos
):
    """`{"rollback": true, "model": COPY}`, COPY a calibrated copy of the previous model: it
    makes that model's embeddings, so it embeds the faces enrolled since the switch and the
    server serves it afterwards (it was 400 "not the previous model")."""
    from facenet import FaceNet
    from facenet.api import file_digest
    from facenet.gallery import Gallery
    from facenet.gallery import migrate as m
    from facenet.server import Settings, create_app

    path = tmp_path / "g.db"
    with Gallery.create(path, small_model, str(small_model_file)) as gallery:
        gallery.enroll("Bush", [photo_path("bush1")])
    second = FaceNet.load(second_model_file)
    m.migrate(path, m.Target.of(second, str(second_model_file)))
    app = create_app(second, Gallery.open(path, second), Settings())
    with local_client(app) as client:
        enrol = {"data": {"name": "Powell"}, "files": files(images=[photos["powell1"]])}
        assert client.post(f"{API}/people", **enrol).status_code == 201  # needs the model back
        body = {"rollback": True, "model": calibrated_model_file.name}
        r = client.post(f"{API}/gallery/migrate", json=body)
        assert r.status_code == 202, r.text
        job = wait(client)
        assert job["state"] == "done" and job["report"]["faces"] == 2, job
        health = client.get(f"{API}/health").json()
        assert health["model_id"] == file_digest(calibrated_model_file)
        r = client.post(f"{API}/identify", files=files(image=photos["powell1"]))
        best = min(r.json()["faces"], key=lambda f: f["distance"])
        assert best["matches"][0]["name"] == "Powell" and best["distance"] < 0.01
    app.state.service.gallery.close()
    with Gallery.open(path) as gallery:
        assert gallery.model_id == small_model.model_id  # the previous model's record


def test_a_rollback_whose_previous_model_file_is_gone_is_400_up_front(
    tmp_path, small_model, small_model_file, second_model_file, photos
):
    """A rollback without a model loads the previous one from its recorded file (for faces
    enrolled since the switch, and to serve it after). That file gone, the job failed at once
    with the gallery's path; it is 400 `invalid_migration` at once, one line without a path,
    naming the model to give. Given, the previous model rolls back."""
    from facenet import FaceNet
    from facenet.gallery import Gallery
    from facenet.gallery import migrate as m
    from facenet.server import Settings, create_app

    path, gone = tmp_path / "g.db", tmp_path / "gone.keras"
    shutil.copy(small_model_file, gone)
    with Gallery.create(path, small_model, str(gone)) as gallery:
        gallery.enroll("Bush", [photo_path("bush1")])
    second = FaceNet.load(second_model_file)
    m.migrate(path, m.Target.of(second, str(second_model_file)))
    gone.unlink()
    app = create_app(second, Gallery.open(path, second), Settings())
    with local_client(app) as client:
        r = client.post(f"{API}/gallery/migrate", json={"rollback": True})
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["code"] == "invalid_migration" and "'test-small'" in error["message"]
        assert "\n" not in error["message"] and "/" not in error["message"]
        assert client.get(f"{API}/gallery/migrate").json()["state"] == "idle"  # no job
        body = {"rollback": True, "model": small_model_file.name}
        r = client.post(f"{API}/gallery/migrate", json=body)
        assert r.status_code == 202 and wait(client)["state"] == "done", r.text
        assert client.get(f"{API}/health").json()["model_id"] == small_model.model_id
    app.state.service.gallery.close()
