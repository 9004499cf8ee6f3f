"""The tf.data input pipeline: parallel decode, augmentation, batching, prefetch.

Images are read from disk (any size, colour or greyscale), resized to the crop size and given a
little context, then cut to the network's input size: a random crop (training) or the central
crop (evaluation). The context is either real (`source="context"`: files aligned at
`context_size`, so the central crop is the inference crop) or reflected padding
(`source="aligned"`: files aligned at the input size, as `facenet align` writes them).

Augmentation (training): random crop, horizontal flip, brightness and contrast jitter and an
optional greyscale conversion. All randomness is stateless, seeded by (seed, epoch, position in
the epoch), so an epoch's images are the same whether or not training was interrupted.
Output: float32 pixels in 0..255 (the model preprocesses them itself) and int32 labels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

SOURCES = ("aligned", "context")


@dataclass
class Augment:
    flip: bool = True
    crop: bool = True
    brightness: float = 0.1  # max delta, as a fraction of 255
    contrast: float = 0.2  # factor in [1 - contrast, 1 + contrast]
    greyscale: float = 0.0  # probability

    @classmethod
    def none(cls) -> Augment:
        return cls(flip=False, crop=False, brightness=0.0, contrast=0.0, greyscale=0.0)


def context_size(image_size: int) -> int:
    """The side of the slightly larger crop random crops are cut from (1/8 more, even)."""
    return image_size + 2 * max(1, round(image_size / 16))


def load_image(path, image_size: int, source: str = "aligned") -> tf.Tensor:
    """Decode one image file to float32 (L, L, 3) with L = context_size(image_size)."""
    big = context_size(image_size)
    raw = tf.io.read_file(path)
    img = tf.io.decode_image(raw, channels=3, expand_animations=False)
    img.set_shape([None, None, 3])
    img = tf.cast(img, tf.float32)
    if source == "context":
        return tf.image.resize(img, [big, big], antialias=True)
    img = tf.image.resize(img, [image_size, image_size], antialias=True)
    pad = (big - image_size) // 2
    return tf.pad(img, [[pad, pad], [pad, pad], [0, 0]], mode="REFLECT")


def augment_image(img, seed, image_size: int, augment: Augment) -> tuple[tf.Tensor, tf.Tensor]:
    """Augment one (L, L, 3) float image with a stateless seed (2,).

    Returns the (S, S, 3) float32 image and whether it was mirrored (a distillation target
    must be the teacher's view of the same, mirrored or not, face).
    """
    seeds = tf.random.experimental.stateless_split(seed, 5)
    if augment.crop:
        img = tf.image.stateless_random_crop(img, [image_size, image_size, 3], seeds[0])
    else:
        img = center_crop(img, image_size)
    flipped = tf.constant(False)
    if augment.flip:
        flipped = tf.random.stateless_uniform([], seeds[1]) < 0.5
        img = tf.where(flipped, tf.image.flip_left_right(img), img)
    if augment.brightness:
        img = tf.image.stateless_random_brightness(img, augment.brightness * 255.0, seeds[2])
    if augment.contrast:
        c = augment.contrast
        img = tf.image.stateless_random_contrast(img, 1.0 - c, 1.0 + c, seeds[3])
    if augment.greyscale:
        grey = tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(img))
        coin = tf.random.stateless_uniform([], seeds[4]) < augment.greyscale
        img = tf.where(coin, grey, img)
    return tf.clip_by_value(img, 0.0, 255.0), flipped


def center_crop(img, image_size: int) -> tf.Tensor:
    big = tf.shape(img)[0]
    off = (big - image_size) // 2
    return img[off : off + image_size, off : off + image_size]


def train_dataset(
    paths,
    labels,
    batches: np.ndarray,
    *,
    image_size: int,
    augment: Augment | None = None,
    seed: int = 0,
    epoch: int = 0,
    source: str = "aligned",
    chunks: int = 1,
    keep_chunks: tuple[int, int] | None = None,
    parallel: int | None = None,
    with_views: bool = False,
) -> tf.data.Dataset:
    """One epoch of batches from sampler rows `batches` (steps, B) of indices into `paths`.

    Yields (images, labels), or with `with_views` (images, labels, indices into `paths`,
    mirrored flags), which distillation uses to look up the teacher's view of each image.

    Each row is cut into `chunks` consecutive equal chunks (the per-replica batches, in replica
    order) and the dataset yields chunk after chunk. `keep_chunks=(start, stop)` keeps only
    chunks start..stop-1 of every row (one worker's replicas in multi-worker training).
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}; got {source!r}")
    augment = Augment() if augment is None else augment
    batches = np.asarray(batches, dtype=np.int64)
    steps, batch = batches.shape
    if batch % chunks:
        raise ValueError(f"batch size {batch} is not divisible into {chunks} chunks")
    per_chunk = batch // chunks
    flat = batches.reshape(-1)
    position = np.arange(flat.size, dtype=np.int64)
    if keep_chunks is not None:
        chunk = (position // per_chunk) % chunks
        keep = (chunk >= keep_chunks[0]) & (chunk < keep_chunks[1])
        flat, position = flat[keep], position[keep]
    all_paths = np.asarray(paths, dtype=object).astype(str)
    all_labels = np.asarray(labels, dtype=np.int32)
    ds = tf.data.Dataset.from_tensor_slices((all_paths[flat], all_labels[flat], position, flat))
    base = tf.constant(int(seed) * 1_000_003 + int(epoch), tf.int64)

    def load(path, label, pos, index):
        img = load_image(path, image_size, source)
        img, flipped = augment_image(img, tf.stack([base, pos]), image_size, augment)
        return (img, label, index, flipped) if with_views else (img, label)

    ds = ds.map(load, num_parallel_calls=parallel or tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(per_chunk, drop_remainder=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def eval_images(paths, image_size: int, source: str = "aligned", batch: int = 64) -> np.ndarray:
    """Centre crops (n, S, S, 3) uint8 of image files, as evaluation sees them."""

    def load(path):
        img = center_crop(load_image(path, image_size, source), image_size)
        return tf.cast(tf.round(tf.clip_by_value(img, 0.0, 255.0)), tf.uint8)

    ds = tf.data.Dataset.from_tensor_slices(np.asarray(paths, dtype=object).astype(str))
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(batch)
    parts = [b.numpy() for b in ds]
    if not parts:
        return np.zeros((0, image_size, image_size, 3), np.uint8)
    return np.concatenate(parts)


def pipeline_throughput(dataset: tf.data.Dataset, steps: int, warmup: int = 2) -> dict:
    """Images/s of iterating `dataset` alone (no model): median and mean over `steps` batches."""
    times, sizes = [], []
    it = iter(dataset)
    for _ in range(warmup):
        next(it)
    last = time.perf_counter()
    for _ in range(steps):
        try:
            images, _ = next(it)
        except StopIteration:
            break
        now = time.perf_counter()
        times.append(now - last)
        sizes.append(int(images.shape[0]))
        last = now
    rates = np.array(sizes) / np.maximum(np.array(times), 1e-9)
    return {
        "median_images_per_s": float(np.median(rates)) if len(rates) else float("nan"),
        "mean_images_per_s": float(sum(sizes) / max(sum(times), 1e-9)),
        "batches": len(times),
    }
