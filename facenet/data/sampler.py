"""The P x K batch sampler: P identities with K different images each, plus optional extras.

Every batch holds `p` distinct identities drawn from those with at least `k` images, each with
`k` distinct images (so an anchor and its positive are always different files), and `extra`
single images from distinct identities with fewer than `k` images: these feed the softmax head
and act as negatives for the triplet loss (they have no positive in the batch).

Batches are a pure function of (seed, epoch, step): the sampler's state is just
``{"seed", "epoch"}``, which a checkpoint stores and `load_state_dict` restores.

For `replicas` > 1 (tf.distribute), each batch is laid out as `replicas` consecutive chunks of
p/replicas whole identities (then extra/replicas extras), so every replica mines on whole
identities. `p` and `extra` must be divisible by `replicas`.
"""

from __future__ import annotations

import numpy as np

from ..errors import DatasetError


class PKSampler:
    """P identities x K images per batch (per replica), seeded and resumable."""

    def __init__(
        self,
        labels,
        p: int,
        k: int,
        *,
        seed: int = 0,
        extra: int = 0,
        replicas: int = 1,
    ):
        labels = np.asarray(labels, dtype=np.int64)
        if k < 2:
            raise DatasetError(f"k must be at least 2 (triplets need a positive); got {k}")
        if p < 1 or extra < 0 or replicas < 1:
            raise DatasetError(
                f"need p >= 1, extra >= 0, replicas >= 1; got {p}, {extra}, {replicas}"
            )
        if p % replicas or extra % replicas:
            raise DatasetError(
                f"p ({p}) and extra ({extra}) must be divisible by the number of replicas "
                f"({replicas}) so each replica gets whole identities"
            )
        self.p, self.k, self.extra, self.replicas = int(p), int(k), int(extra), int(replicas)
        self.seed = int(seed)
        self.epoch = 0
        order = np.argsort(labels, kind="stable")
        ids, starts, counts = np.unique(labels[order], return_index=True, return_counts=True)
        members = np.split(order, starts[1:])
        self.groups = [m for m, c in zip(members, counts, strict=True) if c >= k]
        self.group_ids = ids[counts >= k]
        self.small = [m for m, c in zip(members, counts, strict=True) if c < k]
        if len(self.groups) < p:
            raise DatasetError(
                f"only {len(self.groups)} identities have {k}+ images; need at least p = {p}"
            )
        if extra > len(self.small):
            raise DatasetError(
                f"extra = {extra} but only {len(self.small)} identities have fewer than {k} images"
            )

    @property
    def batch_size(self) -> int:
        """Images per global batch: P x K plus the extra single images."""
        return self.p * self.k + self.extra

    @property
    def per_replica(self) -> int:
        """Images per replica's batch."""
        return self.batch_size // self.replicas

    def steps_per_epoch(self) -> int:
        """Batches to show each image of the P x K identities about once."""
        images = sum(len(g) for g in self.groups)
        return max(1, images // (self.p * self.k))

    def epoch_batches(self, epoch: int | None = None, steps: int | None = None) -> np.ndarray:
        """(steps, batch_size) image indices of one epoch (default: the current epoch)."""
        epoch = self.epoch if epoch is None else int(epoch)
        steps = self.steps_per_epoch() if steps is None else int(steps)
        rng = np.random.default_rng([self.seed, epoch])
        out = np.empty((steps, self.batch_size), dtype=np.int64)
        queue: list[int] = []
        small_queue: list[int] = []
        r = self.replicas
        pr, er = self.p // r, self.extra // r
        for s in range(steps):
            chosen = _take(queue, self.p, len(self.groups), rng)
            blocks = [rng.choice(self.groups[g], self.k, replace=False) for g in chosen]
            extras: list[int] = []
            if self.extra:
                picked = _take(small_queue, self.extra, len(self.small), rng)
                extras = [int(rng.choice(self.small[g])) for g in picked]
            row: list[int] = []
            for j in range(r):
                for block in blocks[j * pr : (j + 1) * pr]:
                    row.extend(int(i) for i in block)
                row.extend(extras[j * er : (j + 1) * er])
            out[s] = row
        return out

    def state_dict(self) -> dict:
        """What a checkpoint stores to resume the same batches."""
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        """Resume from `state_dict`."""
        self.seed = int(state["seed"])
        self.epoch = int(state["epoch"])


class ShuffleSampler:
    """Every image once per epoch in a seeded order: distillation alone needs no identities."""

    def __init__(self, count: int, batch_size: int, seed: int):
        if count < batch_size:
            raise DatasetError(f"{count} images are fewer than one batch of {batch_size}")
        self.count, self.batch_size, self.seed = count, batch_size, seed

    def steps_per_epoch(self) -> int:
        """Full batches per epoch."""
        return self.count // self.batch_size

    def epoch_batches(self, epoch: int, steps: int) -> np.ndarray:
        """(steps, batch_size) image indices for one epoch, seeded by the epoch."""
        rng = np.random.default_rng([self.seed, epoch])
        order = np.concatenate([rng.permutation(self.count) for _ in range(
            -(-steps * self.batch_size // self.count))])  # fmt: skip
        return order[: steps * self.batch_size].reshape(steps, self.batch_size)


def _take(queue: list[int], n: int, population: int, rng: np.random.Generator) -> list[int]:
    """n distinct items from a shuffled queue over range(population), refilled when short."""
    chosen: list[int] = []
    while len(chosen) < n:
        if not queue:
            queue.extend(int(i) for i in rng.permutation(population))
        item = queue.pop()
        if item in chosen:  # after a refill the same item may come up again within a batch
            queue.insert(0, item)
            continue
        chosen.append(item)
    return chosen
