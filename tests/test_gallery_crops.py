"""The face crop the gallery keeps is enough to re-embed a face with every bundled model: the
embedding aligned from the crop stays within 2% of the model's threshold of the one aligned from
the photo, on photos enlarged 3 times (so the crop is downscaled, as for camera photos)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from facenet.catalog import MODELS
from facenet.detect import align_face
from facenet.errors import ModelNotFoundError
from facenet.gallery.crops import CROP_SIDE, cut_crop
from facenet.images import load_image

from .conftest import lfw_image


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_stored_crop_re_embeds_like_the_photo(name):
    from facenet import FaceNet

    try:
        model = FaceNet.load(name)
    except ModelNotFoundError:
        pytest.skip(f"{name} is not installed")
    info = model.info
    for person in ("George_W_Bush", "Colin_Powell", "Tony_Blair"):
        small = load_image(lfw_image(person, 1))
        rgb = np.asarray(Image.fromarray(small).resize((750, 750), Image.BICUBIC))
        face = max(model.detect(rgb), key=lambda f: f.area)
        crop = cut_crop(rgb, face.box)
        image = crop.decode()
        assert max(image.shape[:2]) <= CROP_SIDE < max(rgb.shape[:2])  # downscaled
        local = crop.face_in_crop(face.box, face.landmarks)
        aligned = [
            align_face(rgb, face, info.input_size, info.alignment, info.margin),
            align_face(image, local, info.input_size, info.alignment, info.margin),
        ]
        from_photo, from_crop = model.embed_crops(np.stack(aligned))
        distance = float(np.sum((from_photo - from_crop) ** 2))
        assert distance < 0.02 * model.threshold, (person, distance)
