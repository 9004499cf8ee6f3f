"""The views trainer's train step, one per Keras backend.

Why: JAX wants a pure function (`stateless_call` and the optimizer's `stateless_apply` under
`jax.jit`, the weights carried as arrays between steps), while Keras on TensorFlow refuses
`stateless_apply`; there the step is the ordinary stateful `tf.GradientTape` step under
`tf.function`. Both minimise the same `objective(outputs, seen, batch) -> (loss, stats)`, where
`outputs` is the student's {"embedding", "bottleneck"[, "logits"]} and `seen` the online
teacher's embedding of the view (None with stored targets or no teacher).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from keras import ops

Objective = Callable[[dict, object, dict], tuple[object, dict]]


def make_step(network, optimizer, teacher, objective: Objective, backend: str, crops=None):
    """The step for `backend` ("jax" or "tensorflow"); call it with a batch, `sync()` before
    reading or saving the network's variables. `crops` ((N, H, W, 3) uint8, JAX only): the step
    renders the batch's views itself from its "indices" and "rows" (`facenet.data.views_jax`)."""
    if backend == "tensorflow":
        return TensorflowStep(network, optimizer, teacher, objective)
    return JaxStep(network, optimizer, teacher, objective, crops)


def values(variables) -> list:
    """The variables' current values as tensors (JAX's step carries values, not variables)."""
    return [ops.convert_to_tensor(v.value) for v in variables]


class JaxStep:
    """`jax.jit`-ed pure step; the weights live in `state` until `sync()` writes them back."""

    def __init__(self, network, optimizer, teacher, objective: Objective, crops=None):
        import jax

        from ..data.views_jax import render_views

        def loss_fn(trainable, fixed, teacher_vars, crops, batch):
            if crops is not None:  # the views are rendered here, on the device
                size = int(network.input_shape[1])
                batch = {
                    **batch,
                    "student": render_views(crops, batch["indices"], batch["rows"], size),
                }
                if teacher is not None and "target" not in batch:
                    size = int(teacher.input_shape[1])
                    batch["teacher"] = render_views(crops, batch["indices"], batch["rows"], size)
            outputs, fixed = network.stateless_call(trainable, fixed, batch["student"],
                                                    training=True)  # fmt: skip
            seen = None
            if teacher is not None and "target" not in batch:
                seen, _ = teacher.stateless_call(*teacher_vars, batch["teacher"], training=False)
            loss, stats = objective(outputs, seen, batch)
            return loss, (fixed, stats)

        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

        rate = [i for i, v in enumerate(optimizer.variables) if v.path.endswith("learning_rate")]

        def step(state, teacher_vars, crops, batch):
            trainable, fixed, opt_vars = state
            if "lr" in batch:  # a rate set per step (the wall-clock schedule)
                opt_vars = [batch["lr"] if i in rate else v for i, v in enumerate(opt_vars)]
            (_, (fixed, stats)), grads = grad_fn(trainable, fixed, teacher_vars, crops, batch)
            trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
            return (trainable, fixed, opt_vars), stats

        self._fn = jax.jit(step, donate_argnums=0)
        self._groups = (network.trainable_variables, network.non_trainable_variables,
                        optimizer.variables)  # fmt: skip
        self._state = tuple(values(group) for group in self._groups)
        self._teacher_vars = (
            (values(teacher.trainable_variables), values(teacher.non_trainable_variables))
            if teacher is not None
            else ((), ())
        )
        self._crops = None if crops is None else jax.device_put(crops)

    def __call__(self, batch: dict) -> dict:
        self._state, stats = self._fn(self._state, self._teacher_vars, self._crops, batch)
        return stats

    def sync(self) -> None:
        """Write the carried weights back into the Keras variables (the step donates its input)."""
        for variables, state in zip(self._groups, self._state, strict=True):
            for variable, value in zip(variables, state, strict=True):
                variable.assign(value)


class TensorflowStep:
    """`tf.function` GradientTape step updating the Keras variables in place."""

    def __init__(self, network, optimizer, teacher, objective: Objective):
        import tensorflow as tf

        variables = network.trainable_variables

        def step(batch):
            with tf.GradientTape() as tape:
                outputs = network(batch["student"], training=True)
                seen = None
                if teacher is not None and "target" not in batch:
                    seen = teacher(batch["teacher"], training=False)
                loss, stats = objective(outputs, seen, batch)
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
            return stats

        self._fn = tf.function(step, jit_compile=False, reduce_retracing=True)

    def __call__(self, batch: dict) -> dict:
        return self._fn(batch)

    def sync(self) -> None:
        """Nothing to do: the variables are the state."""


def device_batch(data: dict, lr: float | None) -> dict:
    """The step's input from a loader batch: the rendered views, or the image indices and view
    rows for a step that renders them; `lr`, when set, the rate of this step."""
    batch = {"labels": data["labels"], "partner_labels": data["partner_labels"], "mix": data["mix"]}
    if data["views"]:
        batch["student"] = data["views"][0]
        if len(data["views"]) > 1:
            batch["teacher"] = data["views"][1]
    else:  # rendered by the step
        batch["indices"] = data["indices"].astype(np.int32)
        batch["rows"] = data["rows"].astype(np.float32)
    if lr is not None:
        batch["lr"] = np.float32(lr)
    batch.update({k: data[k] for k in ("target", "weight") if k in data})
    return batch
