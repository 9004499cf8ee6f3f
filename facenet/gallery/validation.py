"""The one rule for person names and metadata, applied by every `Gallery` method that stores
them, so the CLI, the Python API and the server accept and refuse the same things.

Why: a name is printed raw by `facenet gallery list` and shown by the web page, so terminal
escape codes and other control characters are refused; metadata is stored as JSON and served
by the API, so it is bounded in depth and size (a 900-deep object broke serialisation, a
5,000-deep one crashed the CLI with a RecursionError).
"""

from __future__ import annotations

import json
import math
import os
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from ..errors import ArgumentError, GalleryError
from ..images import ImageInput
from ..metadata import as_integer
from ..types import Face

#: The name `identify` gives a face whose best match is farther than the threshold.
UNKNOWN = "unknown"
#: Longest person name, in characters (after stripping surrounding spaces).
MAX_NAME_LENGTH = 200
#: Deepest nesting of metadata: 1 is a flat object, 2 an object holding objects or lists...
MAX_METADATA_DEPTH = 8
#: Largest metadata, as compact JSON in UTF-8 bytes.
MAX_METADATA_BYTES = 16 * 1024
#: Longest metadata key, in characters.
MAX_KEY_LENGTH = 100
#: The largest person or face id: SQLite's integers are signed 64-bit.
MAX_ID = 2**63 - 1
#: Bidirectional overrides and isolates: they reorder how a name is displayed (spoofing).
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
#: Zero-width space, word joiner, BOM: invisible and of no use in a name (unlike ZWJ and ZWNJ,
#: which some scripts need, and are allowed).
INVISIBLE = frozenset("\u200b\u2060\ufeff")
#: Letters drawn as nothing (Hangul fillers, the blank Braille pattern).
BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def _control(text: str) -> str | None:
    """The first control character of `text` (C0/C1 controls, surrogates, line and paragraph
    separators, bidi overrides, invisible spaces), or None."""
    for c in text:
        if unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") or c in BIDI_CONTROLS | INVISIBLE:
            return c
    return None


def check_name(name: object) -> str:
    """A person's name, stripped and in Unicode NFC (so "Zoë" typed and "Zoë" from a folder
    made on macOS, which stores NFD, are one person); GalleryError if empty, reserved, too long
    or holding a control or invisible character."""
    if not isinstance(name, str) or not name.strip():
        raise GalleryError(f"a person's name must be a non-empty string; got {name!r:.80}")
    name = unicodedata.normalize("NFC", name.strip())
    if len(name) > MAX_NAME_LENGTH:
        raise GalleryError(
            f"a person's name is at most {MAX_NAME_LENGTH} characters; got {len(name):,}"
        )
    bad = _control(name)
    if bad is not None:
        raise GalleryError(
            f"a person's name cannot contain control characters (found U+{ord(bad):04X})"
        )
    if not any(_visible(c) for c in name):  # a listing or a match would show a blank
        raise GalleryError(f"a person's name needs a visible character; got {name!a:.80}")
    if name.lower() == UNKNOWN:
        raise GalleryError(f"{name!r} is reserved for faces that match nobody")
    return name


def gallery_path(path: object) -> Path:
    """A gallery file's path; ArgumentError for what is none (None or bytes failed inside
    pathlib with a TypeError)."""
    if not isinstance(path, str | os.PathLike) or isinstance(os.fspath(path), bytes):
        raise ArgumentError(f"a gallery path is a str or a Path; got {type(path).__name__}")
    return Path(path)


def check_id(value: object, kind: str = "face") -> int:
    """A face or person id as an int; ArgumentError for what is no integer: int() turned 2.7
    or True into another id (silently the wrong face), and "x" or None failed inside it."""
    number = as_integer(value)
    if number is None:
        raise ArgumentError(f"a {kind} id must be an integer; got {value!r:.40}")
    return number


def check_ids(values: object, kind: str = "face") -> list[int]:
    """`check_id` of each of `values`; ArgumentError for one id or None where a list is due."""
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise ArgumentError(f"{kind} ids must be a list of integers; got {values!r:.40}")
    return [check_id(value, kind) for value in values]


def known_id(value: object, kind: str = "face") -> int | None:
    """`check_id`, or None for an integer no SQLite row can have (a query with it overflowed)."""
    number = check_id(value, kind)
    return number if 0 < number <= MAX_ID else None


def _visible(c: str) -> bool:
    """Whether `c` draws something on its own: not a combining mark, joiner or other format
    character, space, or blank letter."""
    return unicodedata.category(c) not in ("Mn", "Mc", "Me", "Cf", "Zs") and c not in BLANK_LETTERS


def check_metadata(metadata: object) -> dict:
    """Metadata to store with a person: a JSON object (None: empty) of at most
    MAX_METADATA_DEPTH levels and MAX_METADATA_BYTES bytes, with short printable string keys
    and finite numbers; GalleryError otherwise. Checked without recursion, so any depth is safe."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise GalleryError(f"metadata must be a JSON object; got {type(metadata).__name__}")
    _check_tree(metadata)
    size = len(json.dumps(metadata, ensure_ascii=False, separators=(",", ":")).encode())
    if size > MAX_METADATA_BYTES:
        raise GalleryError(
            f"metadata is at most {MAX_METADATA_BYTES:,} bytes as JSON; got {size:,}"
        )
    return metadata


def _check_tree(metadata: dict) -> None:
    stack: list[tuple[object, int]] = [(metadata, 1)]
    seen = 0
    while stack:
        value, depth = stack.pop()
        seen += 1
        if seen > MAX_METADATA_BYTES:  # every value takes at least one byte of JSON
            raise GalleryError(f"metadata is at most {MAX_METADATA_BYTES:,} bytes as JSON")
        if isinstance(value, (dict, list)) and depth > MAX_METADATA_DEPTH:
            raise GalleryError(f"metadata is nested too deeply (at most {MAX_METADATA_DEPTH})")
        if isinstance(value, dict):
            for key, item in value.items():
                _check_key(key)
                stack.append((item, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, float) and not math.isfinite(value):
            raise GalleryError(f"metadata numbers must be finite; got {value}")
        elif not (value is None or isinstance(value, (str, int, float, bool))):
            raise GalleryError(
                f"metadata values must be JSON (objects, lists, strings, numbers, true, false, "
                f"null); got {type(value).__name__}"
            )


def _check_key(key: object) -> None:
    if not isinstance(key, str) or not key:
        raise GalleryError(f"metadata keys must be non-empty strings; got {key!r:.40}")
    if len(key) > MAX_KEY_LENGTH:
        raise GalleryError(f"metadata keys are at most {MAX_KEY_LENGTH} characters")
    bad = _control(key)
    if bad is not None:
        raise GalleryError(
            f"metadata keys cannot contain control characters (found U+{ord(bad):04X})"
        )


def check_model(model) -> None:
    """GalleryError unless `model` looks like a face model (`FaceNet` or a stand-in): the check
    of every `Gallery` entry point that takes one."""
    for attr in ("model_id", "info", "represent"):
        if not hasattr(model, attr):
            raise GalleryError(f"not a face model (no {attr!r}): {type(model).__name__}")


class EmbeddingModel(Protocol):
    """What the gallery needs from a model (`facenet.FaceNet` provides it)."""

    model_id: str

    @property
    def info(self) -> Any:
        """`ModelInfo`: name, embedding_size, verification and identification thresholds."""

    def represent(self, image: ImageInput) -> list[Face]:
        """Every face of the photo with its embedding."""
