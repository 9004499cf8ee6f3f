"""Fixtures and helpers shared by the server tests (API, browser, schema fuzzing, load).

No tests here: the other server test modules import the fixtures (`*_fixture`, registered under
the name without the suffix).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from .conftest import LFW_DIR

pytest.importorskip("fastapi")
pytest.importorskip("keras")

#: What the web page sends with every call (gallery changes need it, or a JSON body).
CLIENT_HEADER = {"X-Requested-With": "facenet-tests"}
#: (name, index) of the LFW photos the server tests use.
PHOTOS = {
    "bush1": ("George_W_Bush", 1),
    "bush2": ("George_W_Bush", 2),
    "bush3": ("George_W_Bush", 3),
    "powell1": ("Colin_Powell", 1),
    "powell2": ("Colin_Powell", 2),
    "blair1": ("Tony_Blair", 1),
}


def photo_path(key: str):
    name, index = PHOTOS[key]
    return LFW_DIR / name / f"{name}_{index:04d}.jpg"


@pytest.fixture(scope="session", name="photos")
def photos_fixture() -> dict[str, bytes]:
    """The LFW test photos as uploaded bytes (skips when LFW is absent)."""
    paths = {key: photo_path(key) for key in PHOTOS}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        pytest.skip(f"LFW data not available at {LFW_DIR}")
    return {key: path.read_bytes() for key, path in paths.items()}


def png_bytes(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="session", name="blank_png")
def blank_png_fixture() -> bytes:
    """A plain grey image: a valid photo with no face in it."""
    return png_bytes(np.full((160, 160, 3), 128, np.uint8))


@pytest.fixture(name="gallery")
def gallery_fixture(small_model, tmp_path):
    from facenet.gallery import Gallery

    gallery = Gallery.create(tmp_path / "people.db", small_model)
    yield gallery
    gallery.close()


@pytest.fixture(name="make_app")
def make_app_fixture(small_model, gallery):
    """make_app(**settings) -> a fresh app over the small model and an empty gallery."""
    from facenet.server import Settings, create_app

    def make(**settings):
        settings.setdefault("allowed_hosts", ("testserver",))  # TestClient's Host
        return create_app(small_model, gallery, Settings(**settings))

    return make


@pytest.fixture(name="client")
def client_fixture(make_app):
    from fastapi.testclient import TestClient

    with TestClient(make_app(), headers=CLIENT_HEADER) as client:
        yield client


def local_client(app):
    """A TestClient as the web page is one: Host 127.0.0.1 and the page's client header."""
    from fastapi.testclient import TestClient

    return TestClient(app, base_url="http://127.0.0.1", headers=CLIENT_HEADER)


def files(**uploads: bytes | list[bytes]) -> list[tuple[str, tuple[str, bytes, str]]]:
    """Multipart `files=` for httpx: field=bytes, or field=[bytes, ...] for repeated fields."""
    out = []
    for field, value in uploads.items():
        for i, data in enumerate(value if isinstance(value, list) else [value]):
            out.append((field, (f"{field}{i}.jpg", data, "application/octet-stream")))
    return out


def error_of(response, status: int) -> str:
    """The error code of a JSON error answer, checking its status and its shape: only
    `error.code` and a one-line `error.message`."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    message = body["error"]["message"]
    assert message and "\n" not in message, body
    return body["error"]["code"]
