"""The seams a newcomer extends in one file (issue 16): a toy index backend and a toy backbone,
each added through its registry only, then used end to end: embed -> enroll -> identify."""

from __future__ import annotations

import numpy as np
import pytest

from facenet.gallery import Gallery
from facenet.gallery import index as index_module

from .conftest import lfw_image


class MemoryIndex:
    """An exact in-memory index (a dict of face id -> vector): the whole `Index` protocol."""

    kind = "memory"

    def __init__(self, gallery_path, dim: int):
        self.dim = dim
        self.vectors: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.vectors)

    def add(self, vectors, ids) -> None:
        for i, v in zip(
            ids, np.asarray(vectors, np.float32).reshape(len(ids), self.dim), strict=True
        ):
            self.vectors[int(i)] = v

    def remove(self, ids) -> None:
        for i in ids:
            self.vectors.pop(int(i), None)

    def search(self, queries, k):
        ids = np.array(sorted(self.vectors), np.int64)
        k = min(k, len(ids))
        queries = np.asarray(queries, np.float32).reshape(-1, self.dim)
        if k == 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        table = np.stack([self.vectors[int(i)] for i in ids])
        distances = ((queries[:, None, :] - table[None]) ** 2).sum(-1)
        order = np.argsort(distances, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(distances, order, 1), ids[order]

    def sync(self, store, model_id) -> str:
        self.rebuild(store, model_id)
        return "rebuilt (in memory)"

    def rebuild(self, store, model_id) -> None:
        vectors, ids = index_module.stored_vectors(store, model_id, self.dim)
        self.vectors = {}
        self.add(vectors, ids)

    def save(self, store, model_id) -> None:
        pass


PEOPLE = [("Aaron_Eckhart", 1), ("AJ_Cook", 1), ("Abdullah_Gul", 1)]


def enrol_and_identify(model, tmp_path, **gallery_options):
    photos = {name: lfw_image(name, i) for name, i in PEOPLE}
    with Gallery.create(tmp_path / "g.db", model, **gallery_options) as gallery:
        for name, photo in photos.items():
            assert gallery.enroll(name, [photo]).summary().startswith("enrolled 1 face")
        for name, photo in photos.items():
            found = gallery.identify(photo)
            assert found and found[0].name == name, (name, found)
        return gallery.index


def test_toy_index_backend_through_the_registry(tmp_path, small_model, monkeypatch):
    monkeypatch.setitem(index_module.BACKENDS, "memory", MemoryIndex)
    index = enrol_and_identify(small_model, tmp_path, index="memory")
    assert isinstance(index, MemoryIndex) and isinstance(index, index_module.Index)
    assert len(index) == len(PEOPLE)
    with Gallery.open(tmp_path / "g.db", small_model) as gallery:  # the gallery records it
        assert gallery.index_backend == "memory" and gallery.index_status == "rebuilt (in memory)"
        assert gallery.identify(lfw_image(*PEOPLE[1]))[0].name == PEOPLE[1][0]


def test_unknown_index_backend_is_a_gallery_error(tmp_path, small_model):
    from facenet.errors import GalleryError

    with pytest.raises(GalleryError, match="unknown index backend 'nope'"):
        Gallery.create(tmp_path / "g.db", small_model, index="nope")


def toy_backbone(x, width: int = 8):
    """Two small convolutions: a backbone is any (tensor, **options) -> feature map."""
    from keras import layers

    x = layers.Conv2D(width, 3, strides=2, activation="relu", name="toy_conv")(x)
    return layers.Conv2D(2 * width, 3, strides=2, activation="relu", name="toy_conv_2")(x)


def test_toy_backbone_through_the_registry(tmp_path, monkeypatch):
    from facenet import FaceNet, backbones
    from facenet.metadata import ModelInfo
    from facenet.models import build_facenet, save_model

    toy = backbones.Backbone(
        "toy", toy_backbone, bottleneck_bn="Toy_BatchNorm", h5_signature="toy_conv"
    )
    monkeypatch.setitem(backbones.BACKBONES, "toy", toy)
    network = build_facenet("toy", (48, 48, 3), 32)
    assert network.get_layer("Toy_BatchNorm") is not None
    info = ModelInfo(backbone="toy", input_size=48, embedding_size=32, name="toy")
    model = FaceNet.load(save_model(network, info, tmp_path / "toy.keras"))
    assert model.info.backbone == "toy" and model.embed(lfw_image(*PEOPLE[0])).shape == (1, 32)
    enrol_and_identify(model, tmp_path)


def test_backbone_options_stay_with_their_backbone():
    """MobileNet's width is its own option: recorded, read back from weights, not generic."""
    from facenet.backbones import get_backbone
    from facenet.metadata import ModelInfo

    mobilenet, inception = get_backbone("mobilenet"), get_backbone("inception_resnet_v1")
    assert mobilenet.options_from(ModelInfo(alpha=0.25)) == {"alpha": 0.25}
    assert inception.options_from(ModelInfo(alpha=0.25)) == {}
    with pytest.raises(ValueError, match="backbone must be one of mobilenet, inception_resnet_v1"):
        get_backbone("resnet")


class CentreDetector:
    """A toy `Detector`: one face, the centred square of each image."""

    def detect(self, image):
        from facenet.types import Face

        h, w = image.shape[:2]
        side = min(h, w) / 2
        box = (w / 2 - side / 2, h / 2 - side / 2, w / 2 + side / 2, h / 2 + side / 2)
        return [Face(box=box, score=1.0)]

    def detect_batch(self, images):
        return [self.detect(image) for image in images]


def test_toy_detector_through_the_protocol(tmp_path, small_model_file):
    from facenet import FaceNet
    from facenet.detect import Detector

    model = FaceNet.load(small_model_file, detector=CentreDetector())
    assert isinstance(model.detector, Detector)
    faces = model.represent(lfw_image(*PEOPLE[0]))
    assert len(faces) == 1 and faces[0].score == 1.0
    assert faces[0].embedding.shape == (model.embedding_size,)
    enrol_and_identify(model, tmp_path)


def test_detector_settings_are_recorded_in_the_model_info(small_model):
    """A model file's `detection` settings build its detector; files without them (every
    existing one) run with the defaults."""
    import dataclasses

    from facenet import FaceNet
    from facenet.detect.detector import DEFAULT_SETTINGS, detector_settings
    from facenet.metadata import ModelInfo

    assert ModelInfo.from_dict({"backbone": "mobilenet"}).detection == {}
    assert detector_settings({}) == {**DEFAULT_SETTINGS}
    info = dataclasses.replace(small_model.info, detection={"min_face_size": 40, "max_side": 800})
    assert ModelInfo.from_json(info.to_json()).detection == info.detection
    detector = FaceNet(small_model.embedder, info, model_id="x").detector
    assert (detector.min_face_size, detector.max_side) == (40.0, 800)
    assert detector.thresholds == DEFAULT_SETTINGS["thresholds"]
    with pytest.raises(ValueError, match="unknown detection setting"):
        ModelInfo(detection={"size": 3})
    with pytest.raises(ValueError, match="unknown detector setting"):
        detector_settings(None, scale=2)
