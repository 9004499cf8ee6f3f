"""MTCNN face detection (Zhang et al. 2016) on ONNX Runtime: no TensorFlow at run time.

The three networks ship as ONNX graphs in `weights/` (built from the MIT-licensed pretrained
weights by `tools/convert_mtcnn.py`, which folds the Caffe models' x/y swap into the weights).
The cascade runs batched: every pyramid level of every image in a batch is packed into one
mosaic canvas for a single fully convolutional P-Net call (windows that would straddle two tiles
are discarded), then R-Net and O-Net each see all candidates of all images in one call.

Coordinates are continuous pixel coordinates: pixel (i, j) covers [j, j+1) x [i, i+1), so a box
(x1, y1, x2, y2) spans x2 - x1 pixels. Boxes are reported in the coordinates of the image given
to `detect`, even when it was downscaled for detection (see `max_side`).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from ..images import ImageInput, describe, load_image
from ..types import Face
from .mosaic import CELL, _canvas, _canvas_width, _pack, _strips, _windows
from .onnx_nets import MtcnnNet

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).with_name("weights")

#: Detection pixels (after `max_side`) per group of images run through the cascade together.
GROUP_PIXELS = 8_000_000
#: Candidates per R-Net / O-Net call, for the same reason: CPU time per candidate is flat up to
#: 128 (R-Net, 80 us) and 32 (O-Net, 380 us) and grows past them (O-Net at 256: 750 us).
STAGE_BATCH = {"rnet": 128, "onet": 32}
#: Input pixels (batch x height x width) from which a network runs on `threads` threads (only
#: reached by a single input larger than the chunks above).
PARALLEL_FROM = {"pnet": 500_000, "rnet": 256 * 24 * 24, "onet": 128 * 48 * 48}


class MTCNN:
    """The three-stage MTCNN cascade.

    Args:
        min_face_size: smallest face searched for, in pixels of the image as detected (after any
            `max_side` downscaling); the pyramid starts at scale 12 / min_face_size.
        thresholds: face-probability thresholds of P-Net, R-Net and O-Net.
        factor: scale step between pyramid levels.
        max_side: larger images are downscaled so that their longer side is this many pixels
            before detection (None: never); coordinates are mapped back to the original.
        threads: ONNX Runtime intra-op threads for large inputs (default: min(2, CPU count));
            small inputs always run single-threaded (see `PARALLEL_FROM`). Use 1 when the
            cores are shared or one process per core does the work (as `align_dataset` does).
        weights_dir: folder with pnet.onnx, rnet.onnx, onet.onnx (default: the bundled ones).

    Example:
        >>> det = MTCNN()
        >>> faces = det.detect(load_image("photo.jpg"))   # list[Face], best first
    """

    def __init__(
        self,
        min_face_size: float = 20,
        thresholds: Sequence[float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
        max_side: int | None = 1600,
        threads: int | None = None,
        weights_dir: str | os.PathLike | None = None,
    ):
        if not min_face_size > 0:
            raise ValueError(f"min_face_size must be positive; got {min_face_size!r}")
        thresholds = tuple(float(t) for t in thresholds)
        if len(thresholds) != 3 or not all(0.0 <= t < 1.0 for t in thresholds):
            raise ValueError(
                f"thresholds must be three probabilities in [0, 1); got {thresholds!r}"
            )
        if not 0.1 <= factor < 1.0:
            raise ValueError(f"factor must be in [0.1, 1); got {factor!r}")
        if max_side is not None and max_side < CELL:
            raise ValueError(f"max_side must be at least {CELL} or None; got {max_side!r}")
        self.min_face_size = float(min_face_size)
        self.thresholds = thresholds
        self.factor = float(factor)
        self.max_side = None if max_side is None else int(max_side)
        self.threads = threads or min(2, os.cpu_count() or 1)
        self.weights_dir = Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR
        self._sessions = None
        self._pool = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"MTCNN(min_face_size={self.min_face_size:g}, thresholds={self.thresholds}, "
            f"factor={self.factor}, max_side={self.max_side})"
        )

    def __getstate__(self) -> dict:  # sessions are not picklable: a copy reloads lazily
        state = self.__dict__.copy()
        state["_sessions"] = None
        state["_pool"] = None
        state["_lock"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ public API

    def detect(self, image: ImageInput) -> list[Face]:
        """Faces in one RGB image (H x W x 3 uint8, or anything `load_image` takes), best first."""
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[ImageInput]) -> list[list[Face]]:
        """`detect` for many images: one P-Net call per canvas, one R-/O-Net call per stage.

        Images are processed in groups of about `GROUP_PIXELS` detection pixels, so a long list
        of big photos does not hold every pyramid in memory at once.
        """
        results: list[list[Face]] = []
        group: list[np.ndarray] = []
        pixels = 0
        for i, image in enumerate(images):
            rgb = _as_rgb(image, i)
            side = max(rgb.shape[:2])
            scale = 1.0 if self.max_side is None else min(1.0, self.max_side / side)
            pixels += rgb.shape[0] * rgb.shape[1] * scale * scale
            group.append(rgb)
            if pixels >= GROUP_PIXELS:
                results.extend(self._detect_group(group))
                group, pixels = [], 0
        if group:
            results.extend(self._detect_group(group))
        return results

    def _detect_group(self, rgbs: list[np.ndarray]) -> list[list[Face]]:
        pnet, rnet, onet = self._load()
        small, to_original = zip(*(self._downscale(rgb) for rgb in rgbs), strict=True)
        boxes, owner = self._stage1(pnet, small)
        boxes, owner, _ = self._refine(rnet, small, boxes, owner, 24, self.thresholds[1])
        boxes, owner, points = self._refine(onet, small, boxes, owner, 48, self.thresholds[2])
        results: list[list[Face]] = [[] for _ in rgbs]
        for i in range(len(rgbs)):
            mine = np.flatnonzero(owner == i)
            sx, sy = to_original[i]
            for k in mine[np.argsort(-boxes[mine, 4], kind="stable")]:
                x1, y1, x2, y2, score = boxes[k]
                pts = points[k] * np.array([sx, sy])
                box = (float(x1 * sx), float(y1 * sy), float(x2 * sx), float(y2 * sy))
                results[i].append(Face(box=box, score=float(score), landmarks=pts))
        return results

    # ------------------------------------------------------------------ internals

    def _load(self):
        with self._lock:
            if self._sessions is None:
                self._sessions = tuple(
                    MtcnnNet(self.weights_dir / f"{name}.onnx", self.threads, PARALLEL_FROM[name])
                    for name in ("pnet", "rnet", "onet")
                )
        return self._sessions

    def _downscale(self, rgb: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
        h, w = rgb.shape[:2]
        if self.max_side is None or max(h, w) <= self.max_side:
            return rgb, (1.0, 1.0)
        s = self.max_side / max(h, w)
        dw, dh = max(1, round(w * s)), max(1, round(h * s))
        small = np.asarray(Image.fromarray(rgb).resize((dw, dh), Image.BILINEAR, reducing_gap=3.0))
        return small, (w / dw, h / dh)

    def _scales(self, h: int, w: int) -> list[tuple[int, int]]:
        """Pyramid level sizes (height, width), largest first, as in the reference code."""
        m = CELL / self.min_face_size
        minl = min(h, w) * m
        sizes, scale = [], m
        while minl >= CELL:
            sizes.append((int(np.ceil(h * scale)), int(np.ceil(w * scale))))
            scale *= self.factor
            minl *= self.factor
        return [(lh, lw) for lh, lw in sizes if min(lh, lw) >= CELL]

    def _pyramid(self, img: np.ndarray) -> list[np.ndarray]:
        """The pyramid levels; level k is resampled from level k - 2 (about twice its size) rather
        than from the image: as sharp, and 4x cheaper on large photos."""
        sources = [Image.fromarray(img)] * 2
        out = []
        for lh, lw in self._scales(*img.shape[:2]):
            level = sources[-2].resize((lw, lh), Image.BILINEAR)
            sources.append(level)
            out.append(np.asarray(level))
        return out

    def _stage1(self, pnet, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """P-Net over mosaics of all pyramid levels of all images -> square candidate boxes."""
        levels = []  # (image index, level array)
        for i, img in enumerate(images):
            levels.extend((i, level) for level in self._pyramid(img))
        if not levels:
            return np.empty((0, 5)), np.empty(0, int)
        pieces = [(k, y0, part) for k, (_, a) in enumerate(levels) for y0, part in _strips(a)]
        width = _canvas_width(levels, pieces, len(images))
        packed = list(_pack([part.shape[:2] for _, _, part in pieces], width))
        outputs = self._map(pnet, [_canvas(shape, placed, pieces) for shape, placed in packed])
        found_boxes, found_groups = [], []
        for (_, placements), (prob, reg) in zip(packed, outputs, strict=True):
            for j, y, x in placements:
                k, y0, part = pieces[j]
                i, level = levels[k]
                b = _windows(prob[0], reg[0], part.shape[:2], (y, x), y0, self.thresholds[0])
                if b is None:
                    continue
                h, w = images[i].shape[:2]
                lh, lw = level.shape[:2]
                b[:, [0, 2]] /= lw / w
                b[:, [1, 3]] /= lh / h
                found_boxes.append(b)
                found_groups.append(np.full(len(b), k))
        if not found_boxes:
            return np.empty((0, 5)), np.empty(0, int)
        boxes = np.concatenate(found_boxes)
        level = np.concatenate(found_groups)
        keep = nms(boxes, 0.5, groups=level)  # within each pyramid level
        boxes, level = boxes[keep], level[keep]
        owner = np.array([levels[k][0] for k in level], int)
        keep = nms(boxes, 0.7, groups=owner)  # across levels, per image
        boxes, owner = boxes[keep], owner[keep]
        boxes = _square(_regress(boxes[:, :5], boxes[:, 5:9]))
        return boxes, owner

    def _map(self, net, inputs: list[np.ndarray]) -> list:
        """`net.run` on each input, on up to `threads` threads at once (ONNX Runtime releases
        the interpreter lock; each run is single-threaded at these sizes)."""
        run = functools.partial(_run, net)
        if self.threads < 2 or len(inputs) < 2:
            return [run(x) for x in inputs]
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="mtcnn")
        return list(self._pool.map(run, inputs))

    def _refine(self, net, images, boxes, owner, size, threshold):
        """R-Net (size 24) or O-Net (size 48) over all candidates of all images."""
        keep = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
        boxes, owner = boxes[keep], owner[keep]
        if len(boxes) == 0:
            return np.empty((0, 5)), np.empty(0, int), np.empty((0, 5, 2))
        crops = _crops(images, boxes, owner, size)
        step = STAGE_BATCH["rnet" if size == 24 else "onet"]
        outs = self._map(net, [crops[s : s + step] for s in range(0, len(crops), step)])
        prob = np.concatenate([o[0] for o in outs])
        reg = np.concatenate([o[1] for o in outs])
        ok = prob > threshold
        boxes, owner, reg = boxes[ok].copy(), owner[ok], reg[ok]
        boxes[:, 4] = prob[ok]
        if size == 24:
            keep = nms(boxes, 0.7, groups=owner)
            boxes = _square(_regress(boxes[keep], reg[keep]))
            return boxes, owner[keep], np.empty((len(keep), 5, 2))
        marks = np.concatenate([o[2] for o in outs])[ok]
        w = (boxes[:, 2] - boxes[:, 0])[:, None]
        h = (boxes[:, 3] - boxes[:, 1])[:, None]
        points = np.stack(
            [boxes[:, :1] + w * marks[:, :5], boxes[:, 1:2] + h * marks[:, 5:]], axis=2
        )
        boxes = _regress(boxes, reg)
        keep = nms(boxes, 0.7, groups=owner, mode="min")
        return boxes[keep], owner[keep], points[keep]


# ---------------------------------------------------------------------- helpers


def _as_rgb(image: ImageInput, index: int) -> np.ndarray:
    if (
        isinstance(image, np.ndarray)
        and image.dtype == np.uint8
        and image.ndim == 3
        and image.shape[2] == 3
    ):
        return np.ascontiguousarray(image)
    return load_image(image, describe(image, index))


def _run(net, x: np.ndarray):
    return net.run(None, {"image": x})


def _regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    out[:, 0] += reg[:, 0] * w
    out[:, 1] += reg[:, 1] * h
    out[:, 2] += reg[:, 2] * w
    out[:, 3] += reg[:, 3] * h
    return out


def _square(boxes: np.ndarray) -> np.ndarray:
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + (w - side) / 2
    out[:, 1] = boxes[:, 1] + (h - side) / 2
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def nms(boxes: np.ndarray, threshold: float, groups: np.ndarray | None = None, mode: str = "union"):
    """Greedy non-maximum suppression; indices kept, best score first (within each group).

    boxes: (N, >=5) rows x1, y1, x2, y2, score. groups: boxes of different groups never
    suppress each other. mode "union" divides the overlap by the union, "min" by the smaller box.
    """
    if len(boxes) == 0:
        return np.empty(0, int)
    order = np.argsort(-boxes[:, 4], kind="stable")
    if groups is None:
        parts = [order]
    else:  # split by group, each part still sorted by score
        order = order[np.argsort(groups[order], kind="stable")]
        cuts = np.flatnonzero(np.diff(groups[order])) + 1
        parts = np.split(order, cuts)
    keep = [part[_greedy(boxes[part, :4].astype(np.float64), threshold, mode)] for part in parts]
    keep = np.concatenate(keep)
    return keep[np.argsort(-boxes[keep, 4], kind="stable")]


#: Groups up to this size use a full overlap matrix (fast); larger ones a lower-memory loop.
_MATRIX_NMS = 2048


def _overlap(a: np.ndarray, b: np.ndarray, mode: str) -> np.ndarray:
    """Overlap of every box in a (n, 4) with every box in b (m, 4): (n, m)."""
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.maximum(iw, 0.0) * np.maximum(ih, 0.0)
    area_a = np.maximum(a[:, 2] - a[:, 0], 0) * np.maximum(a[:, 3] - a[:, 1], 0)
    area_b = np.maximum(b[:, 2] - b[:, 0], 0) * np.maximum(b[:, 3] - b[:, 1], 0)
    if mode == "min":
        denom = np.minimum(area_a[:, None], area_b[None, :])
    else:
        denom = area_a[:, None] + area_b[None, :] - inter
    return inter / np.maximum(denom, 1e-12)


def _greedy(b: np.ndarray, threshold: float, mode: str) -> np.ndarray:
    """Positions kept by greedy NMS of boxes b (n, 4) already sorted by score, best first."""
    n = len(b)
    if n == 1:
        return np.zeros(1, int)
    if n <= _MATRIX_NMS:
        suppress = _overlap(b, b, mode) > threshold
        alive = np.ones(n, bool)
        keep = []
        for i in range(n):
            if alive[i]:
                keep.append(i)
                alive &= ~suppress[i]
        return np.asarray(keep, int)
    rest, keep = np.arange(n), []
    while rest.size:
        i = rest[0]
        keep.append(i)
        rest = rest[1:][_overlap(b[i : i + 1], b[rest[1:]], mode)[0] <= threshold]
    return np.asarray(keep, int)


def _crops(images, boxes: np.ndarray, owner: np.ndarray, size: int) -> np.ndarray:
    """Resample each box of its image to size x size (zero outside the image), float32 NHWC."""
    out = np.empty((len(boxes), size, size, 3), np.float32)
    for i in np.unique(owner):
        img = images[i]
        h, w = img.shape[:2]
        idx = np.flatnonzero(owner == i)
        b = boxes[idx, :4]
        over = max(0.0, -b[:, 0].min(), -b[:, 1].min(), b[:, 2].max() - w, b[:, 3].max() - h)
        pad = int(np.ceil(min(over, 2 * max(h, w))))
        if pad:
            img = np.pad(img, ((pad, pad), (pad, pad), (0, 0)))
        pil = Image.fromarray(img)
        ph, pw = img.shape[:2]
        b = b + pad
        b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, pw)
        b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, ph)
        for k, box in zip(idx, b, strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            if x2 - x1 < 1e-3 or y2 - y1 < 1e-3:
                out[k] = 0.0
                continue
            out[k] = np.asarray(pil.resize((size, size), Image.BILINEAR, box=(x1, y1, x2, y2)))
    return out
