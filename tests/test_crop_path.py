"""One crop path (issue 16): the API's verify, the server's verify, the training validator and
the dataset aligner cut the same pixels from the same photo: they all go through `detect.crops`."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from .conftest import lfw_image


def test_verify_validator_and_aligner_cut_the_same_crops(small_model, tmp_path):
    from facenet.detect.aligner import align_dataset
    from facenet.train.validation import _align_files

    a, b = lfw_image("Aaron_Eckhart", 1), lfw_image("AJ_Cook", 1)
    info = small_model.info
    verification = small_model.verify(a, b)
    first, second = verification.faces
    assert first.box != second.box and first.landmarks is not None and not first.fallback
    served = np.stack([first.crop, second.crop])

    validated = _align_files([a, b], info.input_size, info.margin, None, info.alignment)
    np.testing.assert_array_equal(validated, served)

    pytest.importorskip("fastapi")
    from facenet.server.served_model import ServedModel
    from facenet.server.uploads import decode_image, probe_image

    uploads = [decode_image(probe_image(p.read_bytes(), p.name, 10**8), 2400) for p in (a, b)]
    found, by_server = ServedModel(small_model, max_faces=20).compare(
        uploads[0].rgb, uploads[1].rgb, None
    )
    assert all(found) and by_server.distance == verification.distance
    np.testing.assert_array_equal(np.stack([f.crop for f in by_server.faces]), served)

    src = tmp_path / "src"
    for photo in (a, b):
        (src / photo.parent.name).mkdir(parents=True)
        shutil.copy(photo, src / photo.parent.name / photo.name)
    align_dataset(src, tmp_path / "dst", size=info.input_size, margin=info.margin,
                  mode=info.alignment, workers=1, progress=False)  # fmt: skip
    for photo, crop in zip((a, b), served, strict=True):
        saved = tmp_path / "dst" / photo.parent.name / (photo.stem + ".png")
        np.testing.assert_array_equal(np.asarray(Image.open(saved)), crop)

    again = small_model.verify(a, b)  # the crops are what was embedded
    assert again.distance == verification.distance
    embedded = small_model.embed_crops(served)
    assert np.isclose(float(np.sum((embedded[0] - embedded[1]) ** 2)), verification.distance)


def test_crops_on_missing(small_model):
    from facenet.errors import NoFaceError

    blank = np.full((120, 90, 3), 128, np.uint8)
    face = lfw_image("Aaron_Eckhart", 1)
    found, none = small_model.crops([face, blank], on_missing="none")
    assert found.crop.shape == (small_model.input_size,) * 2 + (3,) and none is None
    fallback = small_model.crops(blank, on_missing="center")[0]
    assert fallback.fallback and fallback.score == 0 and fallback.box == (0.0, 15.0, 90.0, 105.0)
    with pytest.raises(NoFaceError, match="#1: no face found"):
        small_model.crops([face, blank])
