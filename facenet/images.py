"""Reading user images into one canonical form: an RGB uint8 array (H, W, 3), upright.

Every decoder failure becomes an ImageError that names the input, so callers never see a
traceback from deep inside Pillow. Accepted inputs: a path (str or Path), a PIL image, or a
NumPy array (H x W greyscale, H x W x 1/3/4; uint8, uint16 (scaled to 8 bits), bool, or float
in 0..1 when its maximum is at most 1, else 0..255). EXIF orientation is applied; alpha is
composited over white; 16-bit images keep their most significant byte.
"""

from __future__ import annotations

import operator
import os
import re
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ArgumentError, ImageError

T = TypeVar("T")

ImageInput = str | os.PathLike | Image.Image | np.ndarray

#: File suffixes taken as photos wherever a folder is scanned (enrolment, clustering, datasets,
#: alignment, classification, quantisation samples): one list, so every command sees the same.
IMAGE_SUFFIXES = (
    ".jpg", ".jpeg", ".jfif", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm", ".pgm",
)  # fmt: skip
#: Images with more pixels than this are refused (a decompression-bomb guard); 10000 x 10000 passes.
MAX_PIXELS = 150_000_000
#: Decoded pixels detected together at most (`pixel_groups`): 48 Mpx, four 12 Mpx phone photos
#: or 768 LFW-sized ones.
DECODED_PIXELS = 48_000_000
#: Photos per batch at most wherever a command takes --batch-size (their crops are held at once;
#: the photos are decoded in `pixel_groups`).
MAX_BATCH_SIZE = 1024
#: How an in-memory photo with a name (a server upload) is recorded: `upload:NAME` (`describe`).
UPLOAD_PREFIX = "upload:"


def check_batch_size(batch_size: int, most: int | None = None) -> int:
    """`batch_size` as an int, or a one-line ArgumentError (a FaceNetError and a ValueError)
    when it is below 1 (or above `most`) or no integer (2.5, "8", True, None: else a TypeError
    from deep inside range or NumPy): the one check of the API's entry points that take one."""
    try:
        if isinstance(batch_size, bool | np.bool_):
            raise TypeError("a bool is no batch size")
        batch_size = operator.index(batch_size)  # a NumPy integer passes, as a plain int
    except TypeError:
        bound = "at least 1" if most is None else f"1..{most}"
        raise ArgumentError(f"batch_size must be an integer {bound}; got {batch_size!r}") from None
    if most is not None and not 1 <= batch_size <= most:
        raise ArgumentError(f"batch_size must be 1..{most}; got {batch_size}")
    if batch_size < 1:
        raise ArgumentError(f"batch_size must be at least 1; got {batch_size}")
    return batch_size


def image_list(images: ImageInput | Iterable[ImageInput]) -> list[ImageInput]:
    """`images` as a list: a path, PIL image or image array is a list of one, a 4-D array its
    images, any other iterable its items. The one rule of `FaceNet.embed`/`crops`, `Gallery.enroll`
    and `Library.add`; ImageError for what is neither (None or a number failed inside list(),
    and bytes were taken for a list of numbers)."""
    if isinstance(images, (str, os.PathLike)):
        return [images]
    if isinstance(images, np.ndarray):
        return list(images) if images.ndim == 4 else [images]
    if hasattr(images, "mode") and hasattr(images, "size"):  # a PIL image
        return [images]
    if isinstance(images, (bytes, bytearray, memoryview)):
        raise ImageError(
            f"{type(images).__name__}: encoded image data is not an input; pass a path, or "
            "PIL.Image.open(io.BytesIO(data))"
        )
    if not isinstance(images, Iterable):
        raise ImageError(
            f"unsupported input type {type(images).__name__} (expected a path, a PIL image, "
            "a NumPy array or a list of them)"
        )
    return list(images)


def describe(source: ImageInput, index: int | None = None, label: str | None = None) -> str:
    """A short human name for an input, used in error messages and reports. An in-memory photo
    given a `label` (a server upload's file name) is `upload:LABEL`, the label made safe
    (`safe_label`). Stores record whether a face has a photo file beside its source, so a
    label is never taken for a file path."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if label is not None:
        return UPLOAD_PREFIX + safe_label(label)
    if isinstance(source, Image.Image):
        kind = "PIL image"
    else:  # (an unsupported input, None or a number, is no array: "input")
        kind = "array" if isinstance(source, np.ndarray) else "input"
    return f"{kind} #{index}" if index is not None else kind


def safe_label(name: str | None) -> str:
    """A photo's name as a label: its base name only, printable (control and format
    characters, and anything but letters, digits, `.-_ ()`, become `_`), at most 100
    characters; `upload` when nothing is left."""
    name = os.path.basename((name or "").replace("\\", "/")).strip()
    name = re.sub(r"[^\w.\- ()]", "_", name)[:100]
    return name or "upload"


def label_name(source: str) -> str:
    """What a client is shown of a recorded source: an upload's name without `upload:`."""
    return source.removeprefix(UPLOAD_PREFIX)


def require_utf8_path(path: str | os.PathLike, name: str | None = None) -> None:
    """ImageError unless `path` is valid UTF-8 text. Linux allows any bytes in a file name (old
    archives, Windows zips); Python hands them over as surrogate escapes, which SQLite, Arrow
    and HTML cannot store, so such a file is reported as a failed input rather than crashing
    the command that stores its name."""
    text = os.fsdecode(path)
    if _utf8(text):
        return
    what = "folder name" if _utf8(os.path.basename(text)) else "file name"
    raise ImageError(f"{name or text}: {what} is not valid UTF-8; rename it")


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def load_image(source: ImageInput, name: str | None = None) -> np.ndarray:
    """Return `source` as an upright RGB uint8 array of shape (H, W, 3)."""
    name = name or describe(source)
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source, name)
    if isinstance(source, Image.Image):
        return _pil_to_rgb(source, name)
    if isinstance(source, (str, os.PathLike)):
        return _pil_to_rgb(_open(Path(source), name), name)
    raise ImageError(
        f"{name}: unsupported input type {type(source).__name__} "
        "(expected a path, a PIL image or a NumPy array)"
    )


def pixel_groups(
    images: Iterable[T], budget: int | None = None, array: Callable[[T], np.ndarray] | None = None
) -> Iterator[list[T]]:
    """`images` (decoded as they are drawn, or items holding a decoded image: `array` finds it)
    in order, in groups of at most `budget` pixels (`DECODED_PIXELS` by default; a larger photo
    alone): a batch of 32 camera photos is then never held decoded at once (a 12000 x 9000
    photo costs ~0.5 GB through detection), while small photos still reach the detector
    together."""
    budget = DECODED_PIXELS if budget is None else budget
    group: list[T] = []
    pixels = 0
    for item in images:
        shape = (item if array is None else array(item)).shape
        if group and pixels + shape[0] * shape[1] > budget:
            yield group
            group, pixels = [], 0
        group.append(item)
        pixels += shape[0] * shape[1]
    if group:
        yield group


def _open(path: Path, name: str) -> Image.Image:
    if not path.exists():
        raise ImageError(f"{name}: no such file")
    if path.is_dir():
        raise ImageError(f"{name}: is a directory, not an image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            previous = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None  # we apply our own limit below, before decoding
            try:
                image = Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = previous
            _check_size(image.size, name)
            image.load()
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image file (unrecognised format)") from None
    except ImageError:
        raise
    except PermissionError as exc:  # not the photo's fault: say so, as a gallery's hashing does
        raise ImageError(f"{name}: cannot read ({exc.strerror})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name}: corrupt or truncated image ({exc})") from None
    return image


def _check_size(size: tuple[int, int], name: str) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageError(f"{name}: empty image ({width}x{height})")
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"{name}: image too large ({width}x{height} = {width * height:,} pixels; "
            f"the limit is {MAX_PIXELS:,})"
        )


def _pil_to_rgb(image: Image.Image, name: str) -> np.ndarray:
    _check_size(image.size, name)
    try:  # a PIL image given lazily opened (`Image.open`) decodes here: a truncated one, or one
        image.load()  # closed since, failed inside Pillow with an OSError or a ValueError
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name}: corrupt, truncated or closed image ({exc})") from None
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # a malformed EXIF block must not make a readable image unusable
        pass
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _array_to_rgb(np.asarray(image), name)
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _array_to_rgb(array: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)):
        raise ImageError(
            f"{name}: array of shape {a.shape} is not an image (H x W, H x W x 3 or 4)"
        )
    _check_size((a.shape[1], a.shape[0]), name)
    a = _to_uint8(a, name)
    if a.ndim == 2:
        return np.repeat(a[..., None], 3, axis=-1)
    if a.shape[-1] == 4:
        alpha = a[..., 3:4].astype(np.float32) / 255.0
        rgb = a[..., :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(a)


def _to_uint8(a: np.ndarray, name: str) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if a.dtype == np.uint16:
        return (a >> 8).astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer):
        top = 65535 if a.max(initial=0) > 255 else 255
        return (np.clip(a, 0, top) * (255 / top) + 0.5).astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        if not np.all(np.isfinite(a)):
            raise ImageError(f"{name}: array contains NaN or infinite values")
        scale = 255.0 if a.max(initial=0.0) <= 1.0 else 1.0
        return np.clip(a * scale + 0.5, 0, 255).astype(np.uint8)
    raise ImageError(f"{name}: unsupported array dtype {a.dtype}")


def resize(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize an RGB uint8 array to (size, size) or (width, height), antialiased when shrinking."""
    width, height = (size, size) if isinstance(size, int) else size
    if image.shape[1] == width and image.shape[0] == height:
        return image
    return np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))
