"""The networks: shapes, parameter counts, layer names, training form, preprocessing."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from facenet.models import build_facenet, embedding_model  # noqa: E402
from facenet.models.layers import Preprocessing  # noqa: E402


@pytest.fixture(scope="module")
def mobilenet():
    return build_facenet("mobilenet")


@pytest.fixture(scope="module")
def inception():
    return build_facenet("inception_resnet_v1")


def test_mobilenet_parameter_counts(mobilenet):
    trainable = sum(int(np.prod(w.shape)) for w in mobilenet.trainable_weights)
    assert mobilenet.count_params() == 3_360_320
    assert trainable == 3_338_176


def test_mobilenet_layer_names(mobilenet):
    names = {layer.name for layer in mobilenet.layers}
    expected = {"conv1", "conv1_bn", "Bottleneck", "BatchNorm_Bottleneck"}
    for k in range(1, 14):
        expected |= {f"conv_dw_{k}", f"conv_dw_{k}_bn", f"conv_pw_{k}", f"conv_pw_{k}_bn"}
    assert expected <= names
    assert mobilenet.get_layer("conv_pw_13").output.shape[1:] == (5, 5, 1024)
    bn = mobilenet.get_layer("BatchNorm_Bottleneck")
    assert (bn.momentum, bn.epsilon, bn.scale) == (0.995, 0.001, False)
    assert mobilenet.get_layer("Bottleneck").use_bias is False


def test_inception_resnet_layer_names(inception):
    names = {layer.name for layer in inception.layers}
    expected = {
        "Conv2d_1a_3x3",
        "Conv2d_1a_3x3_BatchNorm",
        "Block35_1_Branch_0_Conv2d_1x1",
        "Block35_1_Branch_2_Conv2d_0c_3x3_BatchNorm",
        "Block35_5_Conv2d_1x1",
        "Mixed_6a_Branch_1_Conv2d_1a_3x3",
        "Block17_10_Branch_1_Conv2d_0c_7x1",
        "Mixed_7a_Branch_2_Conv2d_1a_3x3",
        "Block8_6_Conv2d_1x1",
        "Bottleneck",
        "Bottleneck_BatchNorm",
    }
    assert expected <= names
    assert not any(n.startswith("Block8_7") or n.startswith("Block35_6") for n in names)
    assert "Block8_6_Activation" not in names  # the last block has no activation
    assert inception.get_layer("Block35_1_Conv2d_1x1").use_bias is True
    bn = inception.get_layer("Conv2d_1a_3x3_BatchNorm")
    assert (bn.epsilon, bn.scale) == (0.001, False)
    assert inception.output.shape[-1] == 128


def test_embeddings_are_unit_norm_and_finite(mobilenet):
    x = np.random.default_rng(0).integers(0, 256, (3, 160, 160, 3)).astype("float32")
    out = np.asarray(mobilenet(x, training=False))
    assert out.shape == (3, 128)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    # He initialisation keeps the untrained network's activations alive (not ~1e-20).
    bottleneck = keras.Model(mobilenet.input, mobilenet.get_layer("Bottleneck").output)
    assert np.abs(np.asarray(bottleneck(x, training=False))).mean() > 1e-3


def test_training_form_has_logits_and_shares_weights():
    model = build_facenet("mobilenet", (64, 64, 3), 32, num_classes=7, alpha=0.25)
    x = np.zeros((2, 64, 64, 3), "float32")
    out = model(x, training=False)
    assert set(out) == {"embedding", "logits", "bottleneck"}
    assert out["embedding"].shape == (2, 32) and out["logits"].shape == (2, 7)
    bottleneck = np.asarray(out["bottleneck"])
    unit = bottleneck / np.linalg.norm(bottleneck, axis=1, keepdims=True)
    np.testing.assert_allclose(unit, np.asarray(out["embedding"]), atol=1e-5)
    inference = embedding_model(model)
    np.testing.assert_allclose(np.asarray(inference(x)), np.asarray(out["embedding"]), atol=1e-6)


@pytest.mark.parametrize("alpha, filters", [(0.25, 8), (0.5, 16), (0.75, 24)])
def test_width_multiplier(alpha, filters):
    model = build_facenet("mobilenet", (96, 96, 3), 64, alpha=alpha)
    assert model.get_layer("conv1").filters == filters
    assert model.get_layer("conv_pw_13").filters == int(1024 * alpha)
    assert model.output.shape[-1] == 64


def test_preprocessing_modes():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (2, 8, 8, 3)).astype("float32")
    fixed = np.asarray(Preprocessing("fixed")(x))
    np.testing.assert_allclose(fixed, (x - 127.5) / 128.0, rtol=1e-6)
    unit = np.asarray(Preprocessing("unit")(x))
    np.testing.assert_allclose(unit, x / 255.0, rtol=1e-6)
    white = np.asarray(Preprocessing("prewhiten")(x))
    for i in range(2):  # davidsandberg's prewhiten: per image, std floored at 1/sqrt(size)
        mean, std = x[i].mean(), max(x[i].std(), 1.0 / np.sqrt(x[i].size))
        np.testing.assert_allclose(white[i], (x[i] - mean) / std, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="preprocessing must be one of"):
        Preprocessing("imagenet")


def test_preprocessing_is_part_of_the_model():
    x = np.full((1, 64, 64, 3), 200, "float32")
    embeddings = []
    for mode in ("fixed", "unit"):
        keras.utils.set_random_seed(3)
        embeddings.append(np.asarray(build_facenet("mobilenet", (64, 64, 3), 16, alpha=0.25,
                                                   preprocessing=mode)(x)))  # fmt: skip
    assert not np.allclose(embeddings[0], embeddings[1])


def test_unknown_backbone():
    with pytest.raises(ValueError, match="backbone must be one of"):
        build_facenet("resnet50")


def test_depthwise_pooling_starts_as_the_average_and_weighs_positions():
    keras.utils.set_random_seed(4)
    average = build_facenet("mobilenet", (96, 96, 3), 32, alpha=0.25)
    depthwise = build_facenet("mobilenet", (96, 96, 3), 32, alpha=0.25, pooling="depthwise")
    for layer in average.layers:  # what --init does: every layer found by name
        if layer.weights:
            depthwise.get_layer(layer.name).set_weights(layer.get_weights())
    x = np.random.default_rng(5).integers(0, 256, (3, 96, 96, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(depthwise(x)), np.asarray(average(x)), atol=1e-5)
    gdc = depthwise.get_layer("GDC")
    (kernel,) = gdc.get_weights()
    assert kernel.shape == (3, 3, 256, 1)  # one weight per position and channel
    kernel[0, 0] *= 4.0  # the top-left cell counts more: no longer the average
    gdc.set_weights([kernel])
    assert not np.allclose(np.asarray(depthwise(x)), np.asarray(average(x)), atol=1e-3)


def test_unknown_pooling():
    with pytest.raises(ValueError, match="pooling must be one of average, depthwise"):
        build_facenet("mobilenet", (64, 64, 3), 16, alpha=0.25, pooling="max")
