"""Triplet loss with online (in-batch) triplet selection, and the softmax auxiliary loss.

Everything runs in-graph on the whole batch. Distances are squared L2 between the (unit)
embeddings; one triplet (a, p, n) costs max(0, d(a, p) - d(a, n) + margin), where a and p share
a label (a != p) and n has another label.

Mining:

- ``batch_all``: every valid triplet; the mean over those with a positive loss.
- ``batch_hard``: per anchor, its farthest positive and its closest negative; the mean over
  anchors that have both.
- ``semi_hard`` (FaceNet, as TensorFlow Addons' ``TripletSemiHardLoss``): per anchor-positive
  pair, the closest negative still farther than the positive (d(a, n) > d(a, p)); when there is
  none, the farthest negative. The mean over all anchor-positive pairs whose anchor has a
  negative in the batch.

A batch with no valid triplet (no positive pair, or a single identity) gives a loss of 0 with
zero gradients, never NaN.
"""

from __future__ import annotations

import tensorflow as tf

from .config import MINING

#: A finite stand-in for +/- infinity in masked minima and maxima (keeps gradients finite).
_BIG = 1e9


def pairwise_squared_distances(embeddings: tf.Tensor) -> tf.Tensor:
    """(B, B) squared L2 distances, clipped at 0, exactly 0 on the diagonal."""
    e = tf.cast(embeddings, tf.float32)
    dot = tf.matmul(e, e, transpose_b=True)
    sq = tf.linalg.diag_part(dot)
    d = tf.maximum(sq[:, None] - 2.0 * dot + sq[None, :], 0.0)
    return d * (1.0 - tf.eye(tf.shape(e)[0], dtype=tf.float32))


def _masks(labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    labels = tf.reshape(tf.cast(labels, tf.int64), [-1])
    same = tf.equal(labels[:, None], labels[None, :])
    n = tf.shape(labels)[0]
    not_self = tf.logical_not(tf.eye(n, dtype=tf.bool))
    return tf.logical_and(same, not_self), tf.logical_not(same)


def _mean(values: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    mask = tf.cast(mask, tf.float32)
    return tf.reduce_sum(values * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


def select_triplets(labels, embeddings, margin: float = 0.2, mining: str = "semi_hard") -> dict:
    """The triplets a mining strategy picks, with their losses (all tensors).

    Returns a dict with "losses" (per selected item, hinge applied), "valid" (bool mask of the
    items that count), "active" (valid and loss > 0), and, by strategy:
    semi_hard: items are anchor-positive pairs (B, B); "negative" (B, B) int, the chosen negative
    (-1 where not valid). batch_hard: items are anchors (B,); "positive", "negative" (B,) int
    (-1 where not valid). batch_all: items are triplets (B, B, B) indexed [a, p, n].
    """
    if mining not in MINING:
        raise ValueError(f"mining must be one of {', '.join(MINING)}; got {mining!r}")
    d = pairwise_squared_distances(embeddings)
    pos, neg = _masks(labels)
    margin = tf.cast(margin, tf.float32)
    if mining == "batch_all":
        raw = d[:, :, None] - d[:, None, :] + margin
        valid = tf.logical_and(pos[:, :, None], neg[:, None, :])
        losses = tf.where(valid, tf.maximum(raw, 0.0), 0.0)
        return {"losses": losses, "valid": valid, "active": tf.logical_and(valid, raw > 1e-16),
                "distances": d, "pos_mask": pos, "neg_mask": neg}  # fmt: skip
    if mining == "batch_hard":
        hardest_pos = tf.reduce_max(tf.where(pos, d, -_BIG), axis=1)
        hardest_neg = tf.reduce_min(tf.where(neg, d, _BIG), axis=1)
        valid = tf.logical_and(tf.reduce_any(pos, axis=1), tf.reduce_any(neg, axis=1))
        raw = hardest_pos - hardest_neg + margin
        losses = tf.where(valid, tf.maximum(raw, 0.0), 0.0)
        p_idx = tf.argmax(tf.where(pos, d, -_BIG), axis=1, output_type=tf.int32)
        n_idx = tf.argmin(tf.where(neg, d, _BIG), axis=1, output_type=tf.int32)
        return {"losses": losses, "valid": valid, "active": tf.logical_and(valid, raw > 0.0),
                "positive": tf.where(valid, p_idx, -1), "negative": tf.where(valid, n_idx, -1),
                "distances": d, "pos_mask": pos, "neg_mask": neg}  # fmt: skip
    # semi_hard: items are (anchor, positive) pairs; candidates n along the last axis.
    n = tf.shape(d)[0]
    d_ap = d[:, :, None]
    d_an = tf.broadcast_to(d[:, None, :], [n, n, n])
    semi = tf.logical_and(neg[:, None, :], d_an > d_ap)
    has_semi = tf.reduce_any(semi, axis=2)
    semi_d = tf.reduce_min(tf.where(semi, d_an, _BIG), axis=2)
    semi_i = tf.argmin(tf.where(semi, d_an, _BIG), axis=2, output_type=tf.int32)
    far_d = tf.reduce_max(tf.where(neg, d, -_BIG), axis=1)
    far_i = tf.argmax(tf.where(neg, d, -_BIG), axis=1, output_type=tf.int32)
    chosen_d = tf.where(has_semi, semi_d, tf.broadcast_to(far_d[:, None], [n, n]))
    chosen_i = tf.where(has_semi, semi_i, tf.broadcast_to(far_i[:, None], [n, n]))
    valid = tf.logical_and(pos, tf.reduce_any(neg, axis=1, keepdims=True))
    raw = d - chosen_d + margin
    losses = tf.where(valid, tf.maximum(raw, 0.0), 0.0)
    return {"losses": losses, "valid": valid, "active": tf.logical_and(valid, raw > 0.0),
            "negative": tf.where(valid, chosen_i, -1),
            "distances": d, "pos_mask": pos, "neg_mask": neg}  # fmt: skip


def triplet_loss_with_stats(
    labels, embeddings, margin: float = 0.2, mining: str = "semi_hard"
) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """`triplet_loss` and its statistics: "active_fraction" (active / valid triplets),
    "pos_dist" and "neg_dist" (mean squared distance over all positive / negative pairs) and
    "num_triplets" (valid items), all float32 scalars."""
    sel = select_triplets(labels, embeddings, margin, mining)
    valid = tf.cast(sel["valid"], tf.float32)
    active = tf.cast(sel["active"], tf.float32)
    total = tf.reduce_sum(sel["losses"])
    if mining == "batch_all":
        loss = total / tf.maximum(tf.reduce_sum(active), 1.0)
    else:
        loss = total / tf.maximum(tf.reduce_sum(valid), 1.0)
    d = sel["distances"]
    stats = {
        "active_fraction": tf.reduce_sum(active) / tf.maximum(tf.reduce_sum(valid), 1.0),
        "pos_dist": _mean(d, sel["pos_mask"]),
        "neg_dist": _mean(d, sel["neg_mask"]),
        "num_triplets": tf.reduce_sum(valid),
    }
    return loss, stats


def triplet_loss(labels, embeddings, margin: float = 0.2, mining: str = "semi_hard") -> tf.Tensor:
    """The triplet loss of a batch (a float32 scalar tensor); see the module docstring.

    Args:
        labels: (B,) integer identity labels.
        embeddings: (B, D) unit embeddings (any float dtype; computed in float32).
        margin: the triplet margin (FaceNet: 0.2).
        mining: "semi_hard", "batch_hard" or "batch_all".
    """
    return triplet_loss_with_stats(labels, embeddings, margin, mining)[0]


def softmax_loss(labels, logits, label_smoothing: float = 0.0) -> tf.Tensor:
    """Mean softmax cross-entropy of integer labels against logits (computed in float32)."""
    logits = tf.cast(logits, tf.float32)
    labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
    if label_smoothing:
        classes = tf.shape(logits)[-1]
        target = tf.one_hot(labels, classes) * (1.0 - label_smoothing)
        target += label_smoothing / tf.cast(classes, tf.float32)
        per = tf.nn.softmax_cross_entropy_with_logits(target, logits)
    else:
        per = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
    return tf.reduce_mean(per)
