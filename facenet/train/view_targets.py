"""Precomputed teacher targets on consistent views (`tools/teacher_views.py`), for the trainer.

Why: on a CPU the teacher cannot run inside every step; its outputs on K stored views of every
face can. Each step picks one of the K views of each image, the loader regenerates exactly that
view for the student from its stored row, and the target is the teacher's output on it, mapped
into the student's target space as `distill.target_projection` does for the TensorFlow trainer.
No TensorFlow here.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..data.views import COLUMN, PARAMS, ViewSpec, draw_views
from ..errors import FaceNetError
from .distill import target_projection
from .runfiles import open_npz


class ViewTargets:
    """Targets and view rows of a teacher-views file for the images of a dataset."""

    def __init__(self, path: str | os.PathLike, paths: list[str], root, seed: int = 0):
        path = Path(path)
        with open_npz(path, "teacher-views") as z:
            missing = {"paths", "rows", "desc"} - set(z.files)
            if missing:
                raise FaceNetError(f"{path}: not a teacher-views file (no {', '.join(missing)})")
            names, rows, desc = [str(p) for p in z["paths"]], z["rows"], z["desc"]
        if rows.shape[-1] != len(PARAMS):
            raise FaceNetError(f"{path}: view rows of {rows.shape[-1]} columns, not {len(PARAMS)}")
        where = {name: i for i, name in enumerate(names)}
        #: the file's row of each training image (-1: not in the file)
        self.row_of = np.array([where.get(os.path.relpath(p, root), -1) for p in paths])
        if not (self.row_of >= 0).any():
            raise FaceNetError(f"{path}: holds none of the training images under {root}")
        to_image = np.full(len(names), -1)
        to_image[self.row_of[self.row_of >= 0]] = np.flatnonzero(self.row_of >= 0)
        partner = rows[..., COLUMN["partner"]].astype(np.int64)
        mapped = np.where(partner >= 0, to_image[np.maximum(partner, 0)], -1)
        #: a mixed view whose partner is not a training image cannot be regenerated
        self.usable = (partner < 0) | (mapped >= 0)
        self.rows = rows.copy()
        self.rows[..., COLUMN["partner"]] = np.where(partner >= 0, np.maximum(mapped, 0), -1)
        flat = desc.reshape(-1, desc.shape[-1]).astype(np.float64)
        self.projection = target_projection(flat).astype(np.float32)
        self.mean = flat.mean(axis=0).astype(np.float32)
        self.targets = (desc.astype(np.float32) @ self.projection).astype(np.float32)
        self.views, self.seed = rows.shape[1], int(seed)
        self._identity = draw_views(0, 1, ViewSpec.identity())[0]

    @property
    def dims(self) -> int:
        return int(self.targets.shape[-1])

    def batch(self, indices, epoch: int, step: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(view rows, {"target", "weight"}) of a batch: one stored view per image, drawn from
        (seed, epoch, step); weight 0 (and the plain crop) where there is no usable view."""
        indices = np.asarray(indices, np.int64)
        k = np.random.default_rng([self.seed, int(epoch), int(step), 1]).integers(
            0, self.views, len(indices)
        )
        r = self.row_of[indices]
        ok = r >= 0
        safe = np.maximum(r, 0)
        ok &= self.usable[safe, k]
        rows = np.where(ok[:, None], self.rows[safe, k], self._identity)
        target = np.where(ok[:, None], self.targets[safe, k], 0.0).astype(np.float32)
        return rows, {"target": target, "weight": ok.astype(np.float32)}
