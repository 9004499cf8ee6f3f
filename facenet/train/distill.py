"""Knowledge distillation from a stronger teacher's precomputed face descriptors.

The teacher file (`tools/teacher_dlib.py` writes one) holds, for every training image, the
teacher's descriptor of the aligned crop (`desc`) and of its mirror image (`desc_flip`), keyed by
the image path relative to the dataset root. The student's batch-normalised bottleneck (before L2
normalisation) regresses the teacher's descriptor of the very view it was shown.

Why this form: the bottleneck BatchNorm has no scale, so each of its outputs has unit variance
over a batch, while a teacher such as dlib's spreads its descriptors over ~80 of 128 directions
around a large common mean. Targets are therefore turned by a fixed random rotation (which spreads
the teacher's variance evenly over the dimensions) and scaled so their spread matches the
student's (E||t - mean||^2 = D). The BatchNorm's beta starts at the targets' mean, so the
regression never fights that offset, and the student's normalised embedding lives where the
teacher's normalised descriptor does: validation and the saved model measure the same thing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from keras import ops

from ..errors import FaceNetError
from .runfiles import open_npz


@dataclass
class TeacherTargets:
    #: (n_images, 2, D) float32: the target for the image as stored and for its mirror image
    table: np.ndarray
    #: (n_images,) float32: 1 where the teacher saw the image, 0 where it did not
    mask: np.ndarray
    #: (D,) the targets' mean over the teacher's images: the bottleneck BatchNorm's initial beta
    offset: np.ndarray

    @property
    def coverage(self) -> float:
        return float(self.mask.mean()) if self.mask.size else 0.0


def load_teacher_targets(
    path: str | os.PathLike,
    image_paths: list[str],
    root: str | os.PathLike,
    embedding_size: int,
) -> TeacherTargets:
    """Targets for `image_paths` (files under `root`) from a teacher descriptor file."""
    path = Path(path)
    if not path.is_file():
        raise FaceNetError(f"{path}: no such teacher file")
    with open_npz(path, "teacher descriptor") as z:
        missing = {"paths", "desc", "desc_flip"} - set(z.files)
        if missing:
            raise FaceNetError(f"{path}: not a teacher file (missing {', '.join(sorted(missing))})")
        rows = {str(p): i for i, p in enumerate(z["paths"])}
        desc = z["desc"].astype(np.float64)
        desc_flip = z["desc_flip"].astype(np.float64)
    dims = desc.shape[1]
    if dims != embedding_size:
        raise FaceNetError(
            f"{path}: the teacher's descriptors have {dims} dimensions; distillation needs "
            f"--embedding-size {dims}"
        )
    mean = desc.mean(axis=0)
    projection = target_projection(desc)

    def to_targets(x: np.ndarray) -> np.ndarray:
        return (x @ projection).astype(np.float32)

    table = np.zeros((len(image_paths), 2, dims), np.float32)
    mask = np.zeros(len(image_paths), np.float32)
    found = [(i, rows.get(os.path.relpath(p, root))) for i, p in enumerate(image_paths)]
    found = [(i, r) for i, r in found if r is not None]
    if not found:
        raise FaceNetError(f"{path}: holds none of the training images under {root}")
    mine, theirs = (np.array(v) for v in zip(*found, strict=True))
    table[mine, 0] = to_targets(desc[theirs])
    table[mine, 1] = to_targets(desc_flip[theirs])
    mask[mine] = 1.0
    return TeacherTargets(table, mask, to_targets(mean[None])[0])


#: The seed of the target space's rotation: fixed, not the run's --seed, so that a student
#: continued with --init under another seed keeps the space it was trained in (with a new
#: rotation its bottleneck starts far from every target: loss 1.9 instead of 0.54). Every
#: student shipped so far was trained in this one.
TARGET_ROTATION_SEED = 0


def target_projection(desc: np.ndarray) -> np.ndarray:
    """The (D, D) map from teacher descriptors (rows) to the student's target space: a fixed
    random rotation, scaled so the descriptors' spread about their mean is E||t - mean||^2 = D."""
    dims = desc.shape[1]
    spread = np.sqrt(np.mean(np.sum((desc - desc.mean(axis=0)) ** 2, axis=1)))
    return np.sqrt(dims) / max(spread, 1e-12) * random_rotation(dims, TARGET_ROTATION_SEED).T


def random_rotation(dims: int, seed: int) -> np.ndarray:
    """A fixed random orthogonal matrix (QR of a Gaussian matrix, signs made unique)."""
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(dims, dims)))
    return q * np.sign(np.diag(r))


def distillation_loss(bottleneck, table, mask, index, flipped):
    """Mean squared error per dimension between the student's bottleneck and the teacher's
    target for each image's view; images the teacher did not see are left out."""
    views = ops.take(table, index, axis=0)  # (B, 2, D)
    target = ops.where(flipped[:, None], views[:, 1], views[:, 0])
    return regression_loss(bottleneck, target, ops.take(mask, index, axis=0))


def regression_loss(bottleneck, target, weight=None):
    """The distillation loss (keras.ops, any backend): the mean over dimensions of the squared
    error between bottleneck and target, averaged over the images with weight (default 1)."""
    error = ops.mean(ops.square(ops.cast(bottleneck, "float32") - target), axis=-1)
    if weight is None:
        return ops.mean(error)
    return ops.sum(weight * error) / ops.maximum(ops.sum(weight), 1.0)


def relation_loss(embedding, target, neighbours: int = 0):
    """The mean squared difference, over every pair of different images in the batch, between
    the student's cosine similarity and the teacher's (keras.ops, any backend); with
    `neighbours` K > 0, plus the same mean over each image's K nearest others by the teacher.

    Why: the regression weighs an error by the teacher's spread in its direction, so the
    directions with little spread, which still tell people apart, are matched worst; a student
    fitted that way puts different people too close (false accepts). This term scores the
    similarities that verification thresholds directly (relational distillation, Park et al.,
    CVPR 2019; similarity-preserving, Tung & Mori, ICCV 2019). Most pairs of a batch are
    strangers far apart, which no threshold decides; the neighbour term puts as much weight on
    the few pairs near each face (its own other image and the strangers most like it)."""
    student = ops.normalize(ops.cast(embedding, "float32"))
    teacher = ops.normalize(ops.cast(target, "float32"))
    teacher_sim = teacher @ ops.transpose(teacher)
    gap = student @ ops.transpose(student) - teacher_sim
    n = ops.cast(ops.shape(gap)[0], "float32")
    loss = ops.sum(ops.square(gap)) / ops.maximum(n * (n - 1.0), 1.0)
    if not neighbours:
        return loss
    others = teacher_sim - 4.0 * ops.eye(ops.shape(gap)[0], dtype="float32")  # never itself
    _, nearest = ops.top_k(others, int(neighbours))  # fewer than the batch (TrainConfig)
    return loss + ops.mean(ops.square(ops.take_along_axis(gap, nearest, axis=1)))
