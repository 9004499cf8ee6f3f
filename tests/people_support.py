"""What the people-library tests share: the default model with its answers kept per photo (each
LFW photo is detected and embedded once per test session), and a few LFW people."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np
import pytest

from facenet.images import load_image

from .conftest import LFW_DIR

#: Two people the default model (dlib-resnet) confuses, picked by its own errors:
#: `python benchmarks/people_lookalikes.py` ranks LFW pairs of people by how many of their
#: cross pairs fall under the model's verification threshold (this pair: 2,082 of 2,769).
LOOKALIKES = ("Alejandro_Toledo", "Hugo_Chavez")
#: Other people for a small library (several photos each, some with background faces).
PEOPLE = ("Colin_Powell", "Tony_Blair", "Serena_Williams", "Vladimir_Putin", "Jiang_Zemin")


class MemoModel:
    """The real model; `represent` remembered by the photo's pixels."""

    def __init__(self, model):
        self.model = model
        self.model_id = model.model_id
        self.info = model.info
        self.name = getattr(model, "name", None)
        self.source = getattr(model, "source", None)
        self.memory: dict[str, list] = {}

    def represent(self, image):
        rgb = load_image(image)
        key = hashlib.sha1(rgb.tobytes() + str(rgb.shape).encode()).hexdigest()
        if key not in self.memory:
            self.memory[key] = self.model.represent(rgb)
        return self.memory[key]


def hold_reads(monkeypatch, model) -> tuple[threading.Event, threading.Event]:
    """Make `model.represent` wait: (reading, release): `reading` is set once a photo is being
    read, which then waits until `release` is set (at most 60 s)."""
    reading, release = threading.Event(), threading.Event()
    original = model.represent

    def held(rgb):
        reading.set()
        assert release.wait(60)
        return original(rgb)

    monkeypatch.setattr(model, "represent", held)
    return reading, release


def lock_free_while_reading(monkeypatch, model, lock, call):
    """Run `call()` in a thread with `model`'s reads held, take `lock` while a photo is being
    read (it must be free: the read holds no lock), then let the read go; `call`'s result."""
    reading, release = hold_reads(monkeypatch, model)
    result = {}
    worker = threading.Thread(target=lambda: result.update(value=call()))
    worker.start()
    try:
        assert reading.wait(60)
        assert lock.acquire(timeout=30), "the lock was held while a photo was being read"
        lock.release()
    finally:
        release.set()
        worker.join(60)
    return result["value"]


_MODEL: MemoModel | None = None


def memo_model() -> MemoModel:
    """The session's remembering default model."""
    global _MODEL
    if _MODEL is None:
        from facenet import FaceNet

        _MODEL = MemoModel(FaceNet.load())
    return _MODEL


def photos(name: str, count: int, start: int = 1) -> list[Path]:
    """Up to `count` LFW photos of `name` from its `start`-th (skips when LFW is missing)."""
    if not LFW_DIR.is_dir():
        pytest.skip(f"LFW data not available at {LFW_DIR}")
    files = sorted((LFW_DIR / name).glob("*.jpg"))
    return files[start - 1 : start - 1 + count]


def identity_of(lib, face_id: int) -> str:
    """The LFW person a face's photo is of."""
    return Path(lib.face(face_id).photo).parent.name


def members(lib) -> dict[int, set[str]]:
    """person id -> the LFW identities of their faces' photos."""
    out: dict[int, set[str]] = {}
    for f in lib.faces():
        if f.person_id is not None:
            out.setdefault(f.person_id, set()).add(Path(f.photo).parent.name)
    return out


def blurred(path: Path, factor: int) -> np.ndarray:
    """The photo shrunk `factor` times and enlarged back: the same face, low quality."""
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").resize((image.width // factor, image.height // factor))
        return np.asarray(small.resize(image.size, Image.BILINEAR))
