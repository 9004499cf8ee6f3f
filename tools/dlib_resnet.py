"""dlib's 128-d face ResNet as the distillation teacher: raw descriptors, chips, a dlib check.

The network and its parser live in the package (`facenet.convert.dlib`,
`facenet.models.dlib_resnet`; `facenet convert ...dat` makes the product's unit-output model).
This tool keeps what only training needs: the raw (not normalised, |d| ~ 1.3-1.6) descriptors
a student regresses onto, dlib-style chips cut in TensorFlow, and `check_against_dlib`, which
compares with `dlib.face_recognition_model_v1.compute_face_descriptor` on real chips.

    python tools/dlib_resnet.py --check CHIP_DIR_OR_IMAGES...   # prints max |difference|
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facenet.convert.dlib_format import CHIP_SIZE

CHIP_PADDING = 0.25


def build_keras(path: str | Path | None = None):
    """dlib's raw descriptors (not unit length): (batch, 150, 150, 3) pixels -> (batch, 128)."""
    from facenet.models.dlib_resnet import build_dlib_resnet

    if path is None:
        import face_recognition_models

        path = face_recognition_models.face_recognition_model_location()
    return build_dlib_resnet(path, normalize=False)


def warp_chips(images, affines, size: int = CHIP_SIZE):
    """dlib-style chips cut from a batch of images in TensorFlow (bilinear, black outside).

    images: (b, h, w, 3) float tensor; affines: (b, 2, 3) chip pixel -> image pixel maps
    (`teacher_dlib.chip_affine`, or the `affine`/`affine_flip` arrays of a teacher file,
    composed with any geometric augmentation applied to the crop). Returns (b, size, size, 3).
    """
    import tensorflow as tf

    a = tf.reshape(tf.cast(affines, tf.float32), (-1, 6))
    t = tf.concat([a, tf.zeros((tf.shape(a)[0], 2), tf.float32)], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.cast(images, tf.float32),
        transforms=t,
        output_shape=[size, size],
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
        fill_value=0.0,
    )


def check_against_dlib(chips: np.ndarray, model=None) -> float:
    """Max |keras - dlib| over the descriptors of `chips` (n, 150, 150, 3) uint8."""
    import dlib
    import face_recognition_models

    fr = dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())
    ref = np.array(fr.compute_face_descriptor(list(chips)), np.float32)
    model = model or build_keras()
    ours = model.predict(chips.astype(np.float32), verbose=0)
    return float(np.abs(ours - ref).max())


if __name__ == "__main__":
    import argparse
    import glob

    ap = argparse.ArgumentParser()
    ap.add_argument("--check", nargs="+", help="150x150 chips (png/jpg) or folders of them")
    args = ap.parse_args()
    if args.check:
        from PIL import Image

        files = []
        for p in args.check:
            files += sorted(glob.glob(f"{p}/*")) if Path(p).is_dir() else [p]
        chips = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
        print("max |keras - dlib| =", check_against_dlib(chips))
