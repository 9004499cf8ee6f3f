"""A TensorFlow-free batch loader: decode crops with PIL in a thread pool, render consistent views.

Why: the JAX trainer runs where TensorFlow is not installed (the lent GPU machine). Each batch is
a pure function of (seed, epoch, step) and the image indices, so a resumed run sees the same
views. One view row per image (`facenet.data.views`) is rendered at every requested size (the
student's and the teacher's input), so both networks see the same augmented face.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from ..errors import FaceNetError
from ..images import load_image
from .views import COLUMN, ViewSpec, draw_views, render_view


class ViewLoader:
    """Batches of views of `paths` at `sizes` (e.g. (student, teacher)), rendered by `workers`
    threads; `submit` starts a batch in the background, `Future.result()` returns it. A batch is
    assembled on a thread of its own, outside the render pool: inside it, with one worker, the
    batch would wait forever for renders queued behind itself."""

    def __init__(
        self,
        paths: Sequence[str],
        labels,
        sizes: Sequence[int],
        *,
        spec: ViewSpec | None = None,
        seed: int = 0,
        workers: int = 4,
        cache: bool = False,
        targets=None,
        render: bool = True,
    ):
        self.paths = list(paths)
        self.labels = np.asarray(labels, np.int32)
        self.sizes = tuple(int(s) for s in sizes)
        self.spec = spec or ViewSpec()
        self.seed = int(seed)
        #: stored views instead of drawn ones: an object whose `batch(indices, epoch, step)` gives
        #: (rows, {extra arrays}) (`facenet.train.view_targets.ViewTargets`)
        self.targets = targets
        #: False: batches carry the image indices and view rows only, for a step that renders
        #: the views itself from `all_crops()` on the device (`facenet.data.views_jax`)
        self.render = render
        self.pool = ThreadPoolExecutor(max_workers=max(1, int(workers)))
        self._assembler = ThreadPoolExecutor(max_workers=1)
        #: decoded crops by index when `cache` (a GPU outruns JPEG decoding; 48 KiB per 128 px face)
        self.crops: dict[int, np.ndarray] | None = {} if cache else None

    def rows(self, epoch: int, step: int, count: int) -> np.ndarray:
        """The view rows of batch (epoch, step): the same on every run with this seed."""
        return draw_views([self.seed, int(epoch), int(step)], count, self.spec, len(self.paths))

    def submit(self, indices, epoch: int, step: int) -> Future:
        return self._assembler.submit(self.batch, np.asarray(indices, np.int64), epoch, step)

    def batch(
        self, indices: np.ndarray, epoch: int = 0, step: int = 0, rows: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """{"views": [(B, s, s, 3) float32 per size], "labels", "partner_labels", "mix", "rows",
        "indices"}: the views `rows` (default: those of batch (epoch, step)) of images `indices`."""
        extra: dict[str, np.ndarray] = {}
        if rows is None and self.targets is not None:
            rows, extra = self.targets.batch(indices, epoch, step)
        rows = self.rows(epoch, step, len(indices)) if rows is None else np.asarray(rows)
        images = (
            list(self.pool.map(self._render, indices, rows)) if self.render and len(indices) else []
        )
        partner = rows[:, COLUMN["partner"]].astype(np.int64)
        own = self.labels[indices]
        return {
            "views": [np.stack([img[k] for img in images]) for k in range(len(self.sizes))]
            if images
            else [],
            "labels": own,
            "partner_labels": np.where(partner >= 0, self.labels[np.maximum(partner, 0)], own),
            "mix": rows[:, COLUMN["mix"]].astype(np.float32),
            "rows": rows,
            "indices": indices,
            **extra,
        }

    def all_crops(self) -> np.ndarray:
        """(N, H, W, 3) uint8: every crop, decoded by the pool, for rendering on the device; the
        crops must share one size (`facenet align --size` gives that). Not kept in the per-crop
        cache too: the batches of a device-rendering run never decode."""
        crops = list(self.pool.map(load_image, self.paths))
        shapes = {c.shape for c in crops}
        if len(shapes) > 1:
            sizes = ", ".join(f"{w}x{h}" for h, w, _ in sorted(shapes)[:3])
            raise FaceNetError(
                f"rendering on the device needs training faces of one size (found {sizes}): "
                "align them with `facenet align DATA OUT --size N` first"
            )
        return np.stack(crops)

    def _crop(self, index: int) -> np.ndarray:
        if self.crops is None:
            return load_image(self.paths[index])
        crop = self.crops.get(index)
        if crop is None:
            crop = self.crops[index] = load_image(self.paths[index])
        return crop

    def _render(self, index: int, row: np.ndarray) -> list[np.ndarray]:
        crop = self._crop(int(index))
        partner_index = int(row[COLUMN["partner"]])
        partner = self._crop(partner_index) if partner_index >= 0 else None
        if partner is not None and partner.shape != crop.shape:
            from PIL import Image

            h, w = crop.shape[:2]
            partner = np.asarray(Image.fromarray(partner).resize((w, h), Image.BILINEAR))
        return [render_view(crop, row, size, partner) for size in self.sizes]

    def close(self) -> None:
        self._assembler.shutdown(wait=True, cancel_futures=True)
        self.pool.shutdown(wait=True, cancel_futures=True)
