"""The backbone registry: every trainable FaceNet backbone, by name, in one place.

Why: building a network (`models.build_facenet`), recognising a legacy `.h5` weights file
(`models.files.inspect_h5`), converting checkpoints, and the choices of `facenet train` and
`facenet convert` all read this table, so adding a backbone is one module with its builder plus
one `register(Backbone(...))` line here. No TensorFlow is imported: builders are named as
"module:function" and imported when a network is built.

A builder takes the preprocessed image tensor and the backbone's own options (e.g. MobileNet's
`alpha`) and returns its last feature map; the FaceNet head (pooling, bottleneck, BatchNorm,
L2 normalisation) is added by `build_facenet`, the BatchNorm named `bottleneck_bn` as the
public weight files name it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: Reads one layer's arrays from an `.h5` weights file (see `models.files`).
LayerArrays = Callable[[str], list]


@dataclass(frozen=True)
class Backbone:
    """One backbone: how to build it and how its weights files are recognised."""

    name: str
    #: (image tensor, **options) -> feature map; a callable or "module:function" (lazy import).
    builder: Callable[..., Any] | str
    #: The bottleneck BatchNorm's layer name in this backbone's public weight files.
    bottleneck_bn: str
    #: A layer name only this backbone's `.h5` weights files hold.
    h5_signature: str
    #: Backbone-specific options and their defaults (fields of `ModelInfo` and `TrainConfig`).
    options: dict[str, Any] = field(default_factory=dict)
    #: Reads the options back from a weights file (e.g. MobileNet's width from `conv1`).
    h5_options: Callable[[LayerArrays], dict[str, Any]] | None = None
    #: The smallest input (pixels a side) whose feature map is not empty.
    min_input_size: int = 32

    def build(self, inputs, **options):
        """The backbone's feature map over `inputs`; options it does not take are ignored."""
        builder = self.builder
        if isinstance(builder, str):
            module, _, attribute = builder.partition(":")
            builder = getattr(importlib.import_module(module), attribute)
        return builder(inputs, **{k: v for k, v in options.items() if k in self.options})

    def options_from(self, source: Any) -> dict[str, Any]:
        """This backbone's options as recorded on `source` (a `ModelInfo` or `TrainConfig`)."""
        return {k: getattr(source, k, default) for k, default in self.options.items()}


BACKBONES: dict[str, Backbone] = {}


def register(backbone: Backbone) -> Backbone:
    """Add (or replace) a backbone under its name."""
    BACKBONES[backbone.name] = backbone
    return backbone


def get_backbone(name: str) -> Backbone:
    """The backbone called `name`; ValueError naming the choices otherwise."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}; got {name!r}") from None


def backbone_names() -> tuple[str, ...]:
    """The registered backbones' names, in registration order."""
    return tuple(BACKBONES)


def _mobilenet_width(arrays: LayerArrays) -> dict[str, Any]:
    return {"alpha": arrays("conv1")[0].shape[-1] / 32}


register(
    Backbone(
        "mobilenet",
        "facenet.models.mobilenet_v1:mobilenet_v1",
        bottleneck_bn="BatchNorm_Bottleneck",
        h5_signature="conv_dw_1",
        options={"alpha": 1.0},
        h5_options=_mobilenet_width,
    )
)
register(
    Backbone(
        "inception_resnet_v1",
        "facenet.models.inception_resnet_v1:inception_resnet_v1",
        bottleneck_bn="Bottleneck_BatchNorm",
        h5_signature="Block35_1_Conv2d_1x1",
        min_input_size=75,
    )
)
