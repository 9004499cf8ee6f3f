"""`FaceNet`: the one object users hold. Load a model file, then detect, align, embed, verify.

Whole photos are the default input: each goes through MTCNN detection and the alignment the model
was trained with (recorded in its file), and the most prominent face is embedded. Pass
`detect=False` to embed images that are already aligned face crops.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from tqdm.auto import tqdm

from .catalog import resolve
from .errors import ArgumentError, ModelError, ModelNotFoundError, NoFaceError
from .images import (
    MAX_BATCH_SIZE,
    ImageInput,
    check_batch_size,
    describe,
    image_list,
    load_image,
    resize,
)
from .metadata import ModelInfo, check_choice, check_threshold
from .types import Face, Verification

if TYPE_CHECKING:
    from .detect.detector import Detector

log = logging.getLogger(__name__)

ON_MISSING = ("raise", "nan")
#: What `FaceNet.crops` does with an image without a face.
CROPS_ON_MISSING = ("raise", "none", "center")


class Embedder(Protocol):
    """An inference backend: aligned uint8 crops (n, S, S, 3) -> unit embeddings (n, D)."""

    runtime: str

    def __call__(self, crops: np.ndarray) -> np.ndarray: ...


class FaceNet:
    """A face-embedding model with its detector and alignment."""

    def __init__(
        self,
        embedder: Embedder,
        info: ModelInfo,
        *,
        model_id: str,
        source: str | None = None,
        detector: Any = None,
        name: str | None = None,
    ):
        self.embedder = embedder
        self.info = info
        self.model_id = model_id
        self.source = source
        #: The catalog name this model was loaded by (`FaceNet.load("dlib-resnet")`), else None.
        self.name = name
        self._detector = detector

    # --- loading -------------------------------------------------------------------------

    @classmethod
    def load(cls, model: str | os.PathLike | None = None, *, detector: Any = None) -> FaceNet:
        """Load a bundled model by name (`facenet models` lists them) or a model file (.keras,
        weights-only .h5, or an exported .onnx/.tflite).

        With no argument, the default bundled model (`facenet.catalog.DEFAULT_MODEL`) is loaded.
        """
        path, name = resolve(model)
        if not path.exists():
            raise ModelNotFoundError(f"{path}: no such model file")
        if path.is_dir():
            raise ModelError(f"{path}: is a directory; give a model file")
        embedder, info = _load_embedder(path)
        return cls(
            embedder,
            info,
            model_id=file_digest(path),
            source=str(path),
            detector=detector,
            name=name,
        )

    @classmethod
    def from_keras(cls, model: Any, info: ModelInfo, *, detector: Any = None) -> FaceNet:
        """Wrap an in-memory Keras model (e.g. during training) without saving it first."""
        from .models.embedder import KerasEmbedder

        digest = hashlib.sha256()
        for weight in model.weights:
            digest.update(np.asarray(weight).tobytes())
        return cls(
            KerasEmbedder(model, info),
            info,
            model_id=digest.hexdigest()[:16],
            detector=detector,
        )

    # --- properties ----------------------------------------------------------------------

    @property
    def input_size(self) -> int:
        """The side of the square crops the network takes."""
        return self.info.input_size

    @property
    def embedding_size(self) -> int:
        """The length of an embedding."""
        return self.info.embedding_size

    @property
    def threshold(self) -> float:
        """The verification threshold (squared L2) recorded in the model file."""
        return self.info.verification_threshold

    @property
    def calibrated(self) -> bool:
        """Whether the model file carries a calibrated verification threshold. False: `threshold`
        (and so `verify`) is FaceNet's customary 1.1, which may not fit this model; `facenet
        calibrate` writes a calibrated copy. The API only says so here; it prints nothing."""
        return self.info.threshold is not None

    @property
    def detector(self) -> Detector:
        """The face detector: the one given, else the default with the model's recorded
        settings (`ModelInfo.detection`)."""
        if self._detector is None:
            from .detect.detector import make_detector

            self._detector = make_detector(self.info.detection)
        return self._detector

    def with_alignment(self, mode: str, margin: int | None = None) -> FaceNet:
        """This model aligning faces another way (e.g. to measure an alignment mode); the
        network and detector are shared, the model file is untouched."""
        info = dataclasses.replace(
            self.info, alignment=mode, margin=self.info.margin if margin is None else margin
        )
        return FaceNet(
            self.embedder,
            info,
            model_id=self.model_id,
            source=self.source,
            detector=self._detector,
            name=self.name,
        )

    def __repr__(self) -> str:
        return (
            f"FaceNet({self.info.backbone}, {self.input_size}px, {self.embedding_size}-d, "
            f"runtime={self.embedder.runtime}, source={self.source!r})"
        )

    # --- faces ---------------------------------------------------------------------------

    def detect(self, image: ImageInput) -> list[Face]:
        """Every face in one image, in its original pixel coordinates."""
        return self.detector.detect(load_image(image))

    def align(
        self, images: Iterable[ImageInput] | ImageInput, *, on_missing: str = "raise"
    ) -> list[np.ndarray | None]:
        """The aligned crop `embed` would feed the network, one per image (most prominent face).

        on_missing="none" puts None where no face is found instead of raising NoFaceError.
        """
        check_choice("on_missing", on_missing, ("raise", "none"))
        faces = self.crops(images, on_missing=on_missing)
        return [None if face is None else face.crop for face in faces]

    def crops(
        self,
        images: Iterable[ImageInput] | ImageInput,
        *,
        on_missing: str = "raise",
        offset: int = 0,
        detections: Sequence[Sequence[Face]] | None = None,
    ) -> list[Face | None]:
        """The most prominent face of each image with its aligned `crop` (what the network
        sees), box and landmarks: the one crop path (`detect.crops`) that embedding, verify,
        the gallery's training validation and dataset alignment share.

        on_missing: "raise" (NoFaceError), "none" (None in its place) or "center" (the image's
        centred square, a `fallback` Face). `offset` numbers the images in error messages.
        `detections`: the detector's faces of each image when the caller has them already (the
        server lists every face it found), so detection is not run twice.
        """
        from .detect.crops import aligned, face_crops
        from .images import pixel_groups

        check_choice("on_missing", on_missing, CROPS_ON_MISSING)
        items = image_list(images)
        names = [describe(item, offset + i) for i, item in enumerate(items)]
        info = self.info
        cut = aligned(info.input_size, info.alignment, info.margin)
        fallback = info.input_size if on_missing == "center" else None
        if detections is not None:  # the caller decoded and detected them already
            rgbs = [load_image(item, name) for item, name in zip(items, names, strict=True)]
            faces = face_crops(rgbs, self.detector, cut, fallback, detections)
        else:  # decoded a group at a time: only the crops outlive their photos
            faces = []
            decoded = (load_image(item, name) for item, name in zip(items, names, strict=True))
            for rgbs in pixel_groups(decoded):
                faces += face_crops(rgbs, self.detector, cut, fallback)
        if on_missing == "raise":
            for face, name in zip(faces, names, strict=True):
                if face is None:
                    raise NoFaceError(f"{name}: no face found")
        return faces

    def represent(self, image: ImageInput) -> list[Face]:
        """All faces of one image, each with its embedding."""
        rgb = load_image(image)
        faces = self.detector.detect(rgb)
        if not faces:
            return []
        crops = np.stack([self._align(rgb, face) for face in faces])
        embeddings = self.embed_crops(crops)
        return [dataclasses.replace(f, embedding=e) for f, e in zip(faces, embeddings, strict=True)]

    # --- embeddings ----------------------------------------------------------------------

    def embed(
        self,
        images: Iterable[ImageInput] | ImageInput,
        *,
        batch_size: int = 32,
        detect: bool = True,
        on_missing: str = "raise",
        show_progress: bool | None = None,
    ) -> np.ndarray:
        """Unit embeddings, float32 (n, D), one row per input image, in input order.

        images: paths, PIL images or arrays (a single one is taken as a list of one); a 4-D
        uint8 array is a batch of crops. detect=False takes inputs as face crops (resized to the
        input size). on_missing="nan" gives a NaN row for an image without a face instead of
        raising NoFaceError. batch_size: 1..1024 (`MAX_BATCH_SIZE`, the command line's bound;
        outside it a ValueError).
        """
        check_choice("on_missing", on_missing, ON_MISSING)
        batch_size = check_batch_size(batch_size, MAX_BATCH_SIZE)
        if not detect and self._is_crop_batch(images):  # no per-image copies: slices go in
            return self.embed_crops(images, batch_size=batch_size)
        items = image_list(images)
        out = np.full((len(items), self.embedding_size), np.nan, dtype=np.float32)
        if show_progress is None:
            show_progress = log.isEnabledFor(logging.INFO) and len(items) > batch_size

        def crops_of(start: int) -> tuple[int, list[np.ndarray | None]]:
            chunk = items[start : start + batch_size]
            return start, self._crops(chunk, start, detect, raise_missing=on_missing == "raise")

        starts = range(0, len(items), batch_size)
        # whole photos: the next chunk is read, detected and aligned while this one is embedded
        chunks = _ahead(crops_of, starts) if detect and len(starts) > 1 else map(crops_of, starts)
        with tqdm(total=len(items), disable=not show_progress, unit="img", desc="embed") as bar:
            for start, crops in chunks:
                rows = [i for i, crop in enumerate(crops) if crop is not None]
                if rows:
                    batch = np.stack([crops[i] for i in rows])
                    out[[start + i for i in rows]] = self.embedder(batch)
                bar.update(len(crops))
        return out

    def embed_crops(self, crops: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Embed aligned uint8 crops (n, S, S, 3) at the model's input size, batched.
        batch_size: 1..1024 (`MAX_BATCH_SIZE`), as for `embed`: outside it, or crops of another
        shape or dtype, an ArgumentError (a ValueError), before any crop is embedded."""
        batch_size = check_batch_size(batch_size, MAX_BATCH_SIZE)
        crops = np.asarray(crops)
        size = self.input_size
        if crops.ndim != 4 or crops.shape[1:] != (size, size, 3) or crops.dtype != np.uint8:
            raise ArgumentError(
                f"crops must be uint8 of shape (n, {size}, {size}, 3); "
                f"got {crops.dtype} {crops.shape}"
            )
        if len(crops) == 0:
            return np.zeros((0, self.embedding_size), np.float32)
        parts = [self.embedder(crops[i : i + batch_size]) for i in range(0, len(crops), batch_size)]
        return np.concatenate(parts).astype(np.float32, copy=False)

    def verify(
        self,
        a: ImageInput,
        b: ImageInput,
        *,
        threshold: float | None = None,
        detect: bool = True,
        detections: Sequence[Sequence[Face]] | None = None,
    ) -> Verification:
        """Whether two images show the same person (squared L2 distance <= threshold); with
        `detect`, the result carries the two faces compared (box, landmarks, crop).
        `detections`: as for `crops`."""
        threshold = check_threshold(threshold, self.threshold)
        faces = None
        if detect:
            faces = tuple(self.crops([a, b], detections=detections))
            first, second = self.embed_crops(np.stack([f.crop for f in faces]))
        else:
            first, second = self.embed([a, b], detect=False)
        distance = float(np.sum((first - second) ** 2))
        return Verification(
            distance=distance, threshold=threshold, same=distance <= threshold, faces=faces
        )

    # --- internals -----------------------------------------------------------------------

    def _is_crop_batch(self, images: Any) -> bool:
        """A uint8 (n, S, S, 3) array at the input size: what `detect=False` would turn it
        into anyway (each image is already at the size, so `resize` would copy it unchanged)."""
        size = self.input_size
        return (
            isinstance(images, np.ndarray)
            and images.dtype == np.uint8
            and images.ndim == 4
            and images.shape[1:] == (size, size, 3)
            and len(images) > 0
        )

    def _align(self, rgb: np.ndarray, face: Face) -> np.ndarray:
        from .detect.crops import aligned

        info = self.info
        return aligned(info.input_size, info.alignment, info.margin)(rgb, face)

    def _crops(
        self, items: Sequence[ImageInput], offset: int, detect: bool, raise_missing: bool
    ) -> list[np.ndarray | None]:
        if not detect:
            names = [describe(item, offset + i) for i, item in enumerate(items)]
            return [
                resize(load_image(it, n), self.input_size)
                for it, n in zip(items, names, strict=True)
            ]
        faces = self.crops(items, on_missing="raise" if raise_missing else "none", offset=offset)
        return [None if face is None else face.crop for face in faces]


def _ahead(function, args: Iterable) -> Iterator:
    """`function(arg)` for each arg in order, the next one computed in a worker thread while
    the caller works on the current result (whole-photo `embed`: detection, which is mostly
    single-threaded, overlaps the embedder). An error is raised where its result is due."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="facenet-crops") as pool:
        pending = None
        for arg in args:
            future = pool.submit(function, arg)
            if pending is not None:
                yield pending.result()
            pending = future
        if pending is not None:
            yield pending.result()


def default_model_path() -> Path:
    """The file of the default bundled model."""
    return resolve(None)[0]


def file_digest(path: Path) -> str:
    """A stable id of a model file's contents (sha256, 16 hex digits)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _load_embedder(path: Path) -> tuple[Embedder, ModelInfo]:
    suffix = path.suffix.lower()
    if suffix in (".keras", ".h5", ".hdf5"):
        try:
            from .models import load_keras_model, load_weights_h5
            from .models.embedder import KerasEmbedder
        except ImportError:
            raise ModelError(
                f"{path}: Keras model files need TensorFlow (pip install 'facenet-keras[tf]'); "
                "or use an exported .onnx/.tflite model"
            ) from None
        loader = load_keras_model if suffix == ".keras" else load_weights_h5
        model, info = loader(path)
        return KerasEmbedder(model, info), info
    if suffix in (".onnx", ".tflite"):
        try:
            from .runtime import load_exported
        except ImportError:
            raise ModelError(f"{path}: exported models are not supported in this build") from None
        return load_exported(path)
    raise ModelError(
        f"{path}: unknown model file type '{suffix}' (expected .keras, .h5, .onnx or .tflite)"
    )
