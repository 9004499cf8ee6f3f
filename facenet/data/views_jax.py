"""Consistent views rendered on the accelerator: `views.render_view` in jax.numpy, inside the step.

Why: on a lent GPU the PIL renderer (about 3 ms per face and size on one core) starves the step,
which then waits on the loader. Here the decoded crops live on the device as one uint8 array and
the jitted step renders each batch's views from their rows, at the student's and the teacher's
sizes, so both networks still see the same view. The geometry, mixup, colour and low-resolution
round trip follow `views.render_view` step by step (PIL's pixel-centre convention, bilinear
sampling, black outside the crop, PIL's antialiased bilinear resize as a matrix); what differs is
PIL's 8-bit rounding, a grey level or so (`tests/test_views_jax.py` measures it).
"""

from __future__ import annotations

import jax.numpy as jnp

from .views import COLUMN

_GREY = (0.299, 0.587, 0.114)


def render_views(crops, indices, rows, size: int):
    """(B, size, size, 3) float32 views in 0..255 of `crops[indices]` ((N, H, W, 3) uint8 on the
    device) by their view `rows` ((B, len(PARAMS)) float32); a row's partner is an index into
    `crops` too (-1: not mixed)."""
    rows = rows.astype(jnp.float32)
    img = _warp(crops, indices, rows, size)
    partner = rows[:, COLUMN["partner"]].astype(jnp.int32)
    other = _warp(crops, jnp.maximum(partner, 0), rows, size)
    w = jnp.where(partner >= 0, rows[:, COLUMN["mix"]], 1.0)[:, None, None, None]
    img = w * img + (1.0 - w) * other
    img = _colour(img, rows)
    return _lowres(img, rows[:, COLUMN["lowres"]], size)


def _warp(crops, indices, rows, size: int):
    """Scale/shift/rotate (and mirror) each crop into size x size, as `views._warp` (PIL AFFINE)."""
    _, h, w, _ = crops.shape
    scale, theta = rows[:, COLUMN["scale"]], jnp.deg2rad(rows[:, COLUMN["angle"]])
    kx, ky = w / (scale * size), h / (scale * size)
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    sx = jnp.where(rows[:, COLUMN["flip"]] > 0.5, -1.0, 1.0)
    a00, a01, a10, a11 = cos * kx * sx, -sin * ky, sin * kx * sx, cos * ky
    half = size / 2.0
    cx = w * (0.5 + rows[:, COLUMN["shift_x"]]) - (a00 * half + a01 * half)
    cy = h * (0.5 + rows[:, COLUMN["shift_y"]]) - (a10 * half + a11 * half)
    centres = jnp.arange(size, dtype=jnp.float32) + 0.5  # PIL maps output pixel centres
    u, v = centres[None, None, :], centres[None, :, None]
    xin = a00[:, None, None] * u + a01[:, None, None] * v + cx[:, None, None]
    yin = a10[:, None, None] * u + a11[:, None, None] * v + cy[:, None, None]
    inside = (xin >= 0) & (xin < w) & (yin >= 0) & (yin < h)
    x, y = xin - 0.5, yin - 0.5  # PIL's bilinear samples between pixel centres
    x0, y0 = jnp.floor(x), jnp.floor(y)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    xa, xb = jnp.clip(x0, 0, w - 1).astype(jnp.int32), jnp.clip(x0 + 1, 0, w - 1).astype(jnp.int32)
    ya, yb = jnp.clip(y0, 0, h - 1).astype(jnp.int32), jnp.clip(y0 + 1, 0, h - 1).astype(jnp.int32)
    n = indices.astype(jnp.int32)[:, None, None]

    def at(yy, xx):
        return crops[n, yy, xx].astype(jnp.float32)

    top = at(ya, xa) * (1 - fx) + at(ya, xb) * fx
    bottom = at(yb, xa) * (1 - fx) + at(yb, xb) * fx
    return jnp.where(inside[..., None], top * (1 - fy) + bottom * fy, 0.0)


def _colour(img, rows):
    """Saturation, brightness, contrast about the image mean and greyscale, clipped (`views`)."""
    weights = jnp.asarray(_GREY, jnp.float32)
    grey = (img @ weights)[..., None]
    img = grey + rows[:, COLUMN["saturation"], None, None, None] * (img - grey)
    img = img + rows[:, COLUMN["brightness"], None, None, None]
    mean = img.mean(axis=(1, 2, 3), keepdims=True)
    img = mean + rows[:, COLUMN["contrast"], None, None, None] * (img - mean)
    grey = jnp.repeat((img @ weights)[..., None], 3, axis=-1)
    img = jnp.where(rows[:, COLUMN["grey"], None, None, None] > 0.5, grey, img)
    return jnp.clip(img, 0.0, 255.0)


def _lowres(img, factor, size: int):
    """The low-resolution round trip (factor < 1) as one size x size matrix per image, applied
    to rows and columns: PIL's antialiased bilinear resize down to round(size * factor), then up."""
    small = jnp.maximum(4, jnp.round(size * factor)).astype(jnp.float32)
    small = jnp.where(factor < 1.0, small, float(size))
    i = jnp.arange(size, dtype=jnp.float32)
    down = _resize_matrix(small, float(size), i, i)  # (B, size out (first `small` used), size in)
    up = _resize_matrix(float(size), small, i, i)  # (B, size out, size in (first `small` used))
    m = up @ down
    out = jnp.einsum("bij,bjkc,blk->bilc", m, img, m)
    return jnp.where((factor < 1.0)[:, None, None, None], out, img)


def _resize_matrix(out_size, in_size, out_index, in_index):
    """(B, n, n) weights of PIL's bilinear resize from in_size to out_size pixels (each a scalar
    or a (B,) array); rows beyond out_size and columns beyond in_size are zero."""
    out_size, in_size = jnp.broadcast_arrays(
        jnp.atleast_1d(jnp.asarray(out_size, jnp.float32)),
        jnp.atleast_1d(jnp.asarray(in_size, jnp.float32)),
    )
    scale = (in_size / out_size)[:, None, None]
    support = jnp.maximum(scale, 1.0)  # antialias when shrinking
    centre = (out_index[None, :, None] + 0.5) * scale
    weight = jnp.maximum(0.0, 1.0 - jnp.abs((in_index[None, None, :] + 0.5 - centre) / support))
    weight = weight * (in_index[None, None, :] < in_size[:, None, None])
    weight = weight / jnp.maximum(weight.sum(axis=2, keepdims=True), 1e-12)
    return weight * (out_index[None, :, None] < out_size[:, None, None])
