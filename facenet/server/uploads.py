"""Uploaded photos: read the header first (cheap, refuses oversized images unread), decode later,
one at a time and downscaled, inside the inference call that needs it.

Why: a 7.8 KB JPEG can claim 6000 x 6000 pixels; decoding every upload of a request up front
at full size took a server from 294 MB to several GB. A JPEG is decoded at a reduced scale
(libjpeg's DCT scaling, via Pillow's draft mode), so it is never held at full size.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..images import load_image, safe_label
from .settings import IMAGE_FORMATS

ORIENTATION_TAG = 0x0112


class ApiError(Exception):
    """A client error with an HTTP status and a stable machine-readable code."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Probe:
    """One uploaded photo read and its header checked, not decoded yet: width and height are
    the upright photo's (EXIF rotation applied)."""

    filename: str
    data: bytes
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True)
class Upload:
    """One uploaded photo, decoded: `rgb` may be downscaled (`Settings.max_side`); width and
    height are the photo's own, which boxes in answers refer to. The file name is a label."""

    filename: str
    rgb: np.ndarray
    width: int
    height: int

    @property
    def scale(self) -> tuple[float, float]:
        """Photo pixels per decoded pixel, along x and y."""
        return self.width / self.rgb.shape[1], self.height / self.rgb.shape[0]


def probe_image(data: bytes, filename: str | None, max_pixels: int) -> Probe:
    """Read an upload's header only: refuse non-images and images over `max_pixels`, unread."""
    label = safe_label(filename)  # a label only, never opened
    if not data:
        raise ApiError(415, "not_an_image", f"{label}: empty file")
    with _decoder_errors(label):
        image = Image.open(io.BytesIO(data), formats=list(IMAGE_FORMATS))
        width, height = image.size  # read from the header: nothing is decoded yet
        _check_pixels(label, width, height, max_pixels)
        if image.getexif().get(ORIENTATION_TAG, 1) in (5, 6, 7, 8):  # rotated a quarter turn
            width, height = height, width
    return Probe(label, data, width, height)


def decode_image(probe: Probe, max_side: int) -> Upload:
    """Decode a probed upload with its longer side at most `max_side`: a JPEG is decoded at a
    reduced scale (never held at full size), other formats are reduced right after decoding."""
    with _decoder_errors(probe.filename):
        image = Image.open(io.BytesIO(probe.data), formats=list(IMAGE_FORMATS))
        longest = max(image.size)
        if longest > max_side:
            ratio = max_side / longest
            image.draft(image.mode, (int(image.width * ratio), int(image.height * ratio)))
        image.load()
        factor = max(image.size) // max_side
        if factor >= 2:
            image = _resizable(image).reduce(factor)
        if max(image.size) > max_side:
            image = _resizable(image)
            ratio = max_side / max(image.size)
            size = (max(1, round(image.width * ratio)), max(1, round(image.height * ratio)))
            image = image.resize(size, Image.BILINEAR)
        rgb = load_image(image, probe.filename)
    return Upload(probe.filename, rgb, probe.width, probe.height)


def _resizable(image: Image.Image) -> Image.Image:
    """`image` in a mode Pillow can reduce and resize (palette, 1-bit and 16-bit ones cannot)."""
    if image.mode in ("P", "PA", "1"):
        alpha = image.mode == "PA" or "transparency" in image.info
        return image.convert("RGBA" if alpha else "RGB")
    if image.mode.startswith("I;16"):
        return image.convert("I")
    return image


def _check_pixels(label: str, width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ApiError(
            413,
            "image_too_large",
            f"{label}: image too large ({width}x{height} = {width * height:,} pixels; "
            f"the limit is {max_pixels:,})",
        )


@contextlib.contextmanager
def _decoder_errors(label: str):
    """Every decoder failure on client bytes as an ApiError naming the upload."""
    try:
        yield
    except ApiError:
        raise
    except UnidentifiedImageError:
        raise ApiError(
            415,
            "not_an_image",
            f"{label}: not a supported image (accepted: {', '.join(IMAGE_FORMATS)})",
        ) from None
    except Image.DecompressionBombError:
        raise ApiError(
            413, "image_too_large", f"{label}: image too large (decompression bomb)"
        ) from None
    except Exception as exc:  # any decoder failure on hostile bytes is the client's problem
        raise ApiError(
            415, "not_an_image", f"{label}: corrupt or unreadable image ({exc})"
        ) from None
