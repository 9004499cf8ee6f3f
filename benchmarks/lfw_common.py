"""What the LFW benchmarks share: the people on disk and cached embeddings of their photos."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout
DEFAULT_LFW = REPO.parent / "shared" / "data" / "lfw" / "lfw-deepfunneled"


def people(root: Path, min_images: int = 1) -> dict[str, list[Path]]:
    if not root.is_dir():
        sys.exit(f"LFW not found at {root} (pass --lfw)")
    out = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(folder.glob("*.jpg"))
        if len(files) >= min_images:
            out[folder.name] = files
    return out


def embed(model, paths: list[Path], cache: Path | None, batch_size: int) -> np.ndarray:
    """Embeddings of the most prominent face of each photo; NaN rows where none is found.

    Reads and fills facenet's embedding cache ($FACENET_CACHE_DIR, keyed by model and image
    content), so photos `facenet evaluate lfw` already embedded are not embedded again; `cache`
    (an npz of this list) is kept for repeated runs on the same list.
    """
    from facenet.evaluate.embedding import embed_images

    keys = np.array([str(p) for p in paths])
    if cache is not None and cache.is_file():
        data = np.load(cache)
        if str(data["model_id"]) == model.model_id:
            known = dict(zip(data["paths"].tolist(), data["embeddings"], strict=True))
            if all(k in known for k in keys):
                return np.stack([known[k] for k in keys])
    absolute = [str(Path(p).resolve()).lstrip("/") for p in paths]
    done = embed_images(model, absolute, "/", batch_size=batch_size)
    x = done.embeddings.copy()
    x[done.no_face] = np.nan  # a centred crop is not a detected face
    if cache is not None:
        np.savez(cache, paths=keys, embeddings=x, model_id=model.model_id)
    return x
