"""P-Net's mosaic: the pyramid levels of many images packed onto a few small canvases, so one
P-Net call covers many levels (Zhang et al.'s P-Net is fully convolutional: a 12 x 12 window's
output depends on its own pixels only, so tiles at even offsets give the windows each level
would give alone, and windows straddling two tiles are never read).

Levels larger than a canvas are cut into strips of whole window rows (`_strips`); canvases stay
small (`CANVAS_PIXELS` in mtcnn.py) because P-Net's time per pixel doubles once its activations
no longer fit the caches.
"""

from __future__ import annotations

import numpy as np

#: P-Net's window (pixels of a pyramid level) and stride.
CELL = 12
STRIDE = 2
#: Pixels of mosaic canvas per P-Net call. Small on purpose: P-Net's CPU time per pixel is
#: flat up to about 250 000 pixels (80-90 ns, one thread) and doubles by 1 M (150-185 ns), its
#: activations no longer fitting the caches; levels larger than this are cut into strips of
#: whole window rows.
CANVAS_PIXELS = 250_000


def _even(n: int) -> int:
    return int(n) + (int(n) & 1)


def _pair_width(levels, image: int) -> int:
    """Width of the two largest levels of one image side by side (the mosaic's natural width)."""
    widths = [a.shape[1] for i, a in levels if i == image][:2]
    return sum(_even(w) for w in widths)


def _canvas_width(levels, pieces, images: int) -> int:
    """The mosaic's width: two levels side by side when they fit a canvas, else the widest strip."""
    widest = max(_even(part.shape[1]) for _, _, part in pieces)
    tallest = max(_even(part.shape[0]) for _, _, part in pieces)
    pair = max(_pair_width(levels, i) for i in range(images))
    return pair if pair * tallest <= CANVAS_PIXELS else widest


def _strips(level: np.ndarray, budget: int | None = None):
    """A level as (row offset, strip) pieces of at most about `budget` pixels, cut between whole
    rows of P-Net windows (each window lies in exactly one strip, none is lost or repeated)."""
    budget = budget or CANVAS_PIXELS
    h, w = level.shape[:2]
    if h * w <= budget or h < CELL:
        yield 0, level
        return
    rows = (h - CELL) // STRIDE + 1  # window rows
    per = max((budget // w - CELL) // STRIDE + 1, 1)
    for first in range(0, rows, per):
        last = min(first + per, rows)
        y0 = STRIDE * first
        yield y0, level[y0 : STRIDE * (last - 1) + CELL]


def _canvas(shape: tuple[int, int], placements, pieces) -> np.ndarray:
    canvas = np.zeros((1, *shape, 3), np.float32)
    for j, y, x in placements:
        part = pieces[j][2]
        canvas[0, y : y + part.shape[0], x : x + part.shape[1]] = part
    return canvas


def _windows(prob, reg, shape, at, y0: int, threshold: float) -> np.ndarray | None:
    """P-Net's windows of one strip placed at `at` = (y, x) on its canvas with a probability of
    at least `threshold`: rows x1, y1, x2, y2 (level pixels; the strip starts at row `y0` of
    its level), score, 4 regressions. None when there is none."""
    ph, pw = shape
    ny, nx = (ph - CELL) // STRIDE + 1, (pw - CELL) // STRIDE + 1
    cy, cx = at[0] // STRIDE, at[1] // STRIDE
    p = prob[cy : cy + ny, cx : cx + nx]
    qy, qx = np.nonzero(p >= threshold)
    if qy.size == 0:
        return None
    r = reg[:, cy + qy, cx + qx].T
    top = STRIDE * qy + y0
    left = STRIDE * qx
    b = np.stack([left, top, left + CELL, top + CELL, p[qy, qx]], axis=1).astype(np.float64)
    return np.hstack([b, r])


def _pack(shapes: list[tuple[int, int]], width: int, budget: int | None = None):
    """Pack rectangles (h, w) into canvases `width` wide, at even offsets: skyline bottom-left,
    tallest first, each at the lowest spot where it fits (then leftmost), so smaller levels fill
    the space beside and below the big ones (shelves left a quarter of a 1920 x 1080 photo's
    canvas empty, and P-Net's time is its canvas's area).

    Yields ((canvas_h, canvas_w), [(index, y, x), ...]); a canvas holds about `budget` pixels.
    """
    order = sorted(range(len(shapes)), key=lambda k: (-shapes[k][0], -shapes[k][1]))
    max_h = max((budget or CANVAS_PIXELS) // width, 1)
    cells = max(_even(width) // 2, 1)
    skyline = np.zeros(cells, np.int64)  # top of what is placed, per 2-pixel column
    placements: list[tuple[int, int, int]] = []
    for k in order:
        h, w = _even(shapes[k][0]), min(_even(shapes[k][1]), 2 * cells)
        span = max(w // 2, 1)
        tops = np.lib.stride_tricks.sliding_window_view(skyline, span).max(axis=1)
        x = int(np.argmin(tops))
        y = int(tops[x])
        if placements and y + h > max_h:  # canvas full
            yield (int(skyline.max()), width), placements
            placements, skyline[:] = [], 0
            x, y = 0, 0
        placements.append((k, y, 2 * x))
        skyline[x : x + span] = y + h
    if placements:
        yield (int(skyline.max()), width), placements
