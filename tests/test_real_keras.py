"""Real architectures, Keras: `keras.applications` as they ship, subclassed models."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import xai_core  # noqa: E402

from conftest import keras_state  # noqa: E402


def images(n=2, size=32, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n, size, size, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def mobilenet():
    keras.utils.set_random_seed(0)
    return keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=4
    )


def test_mobilenet_batchnorm_capture_equals_a_sub_model(mobilenet):
    x = images()
    names = ["bn_Conv1", "block_1_expand_BN", "block_2_add"]
    expl = xai_core.explain(mobilenet, x, "activations", layers=names)
    for name in names:
        sub = keras.Model(mobilenet.inputs, mobilenet.get_layer(name).output)
        np.testing.assert_allclose(
            expl.activations[name], sub(x, training=False).numpy(), rtol=1e-5, atol=1e-5
        )


def test_grad_cam_on_mobilenet_leaves_it_as_it_was(mobilenet):
    x = images()
    before = keras_state(mobilenet)
    expl = xai_core.explain(mobilenet, x, "grad_cam", layer="Conv_1", target=2)
    assert keras_state(mobilenet) == before
    assert expl.attributions.shape == x.shape and np.isfinite(expl.attributions).all()


def test_deep_shap_on_relu6_is_a_capability_error_and_tensorflow_still_works(mobilenet):
    x = images()
    try:
        expl = xai_core.explain(mobilenet, x, "deep_shap", background=images(3, seed=1))
    except xai_core.CapabilityError as exc:
        assert "gradient_shap" in str(exc)
    else:  # a shap that handles ReLU6 must still give additive values
        assert np.isfinite(expl.attributions).all()
    # shap's gradient overrides are gone: a plain tape on another model works
    dense = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="relu")])
    v = tf.constant(np.ones((1, 3), np.float32))
    with tf.GradientTape() as tape:
        tape.watch(v)
        y = tf.reduce_sum(dense(v))
    assert tape.gradient(y, v) is not None
    xai_core.explain(mobilenet, x, "saliency")


class OwnsAnUncalledLayer(keras.Model):
    def __init__(self) -> None:
        super().__init__()
        self.conv = keras.layers.Conv2D(4, 3, padding="same", name="conv")
        self.spare = keras.layers.Conv2D(4, 3, padding="same", name="spare")
        self.never = keras.layers.Dense(7, name="never")
        self.pool = keras.layers.GlobalAveragePooling2D(name="pool")
        self.fc = keras.layers.Dense(2, name="fc")

    def call(self, x):
        self.spare(x)
        return self.fc(self.pool(tf.nn.relu(self.conv(x))))


def test_subclassed_model_with_unused_and_uncalled_layers():
    keras.utils.set_random_seed(0)
    model, x = OwnsAnUncalledLayer(), images(2, 8)
    model(x)
    before = keras_state(model)
    expl = xai_core.explain(model, x, "activations")  # every layer that runs
    assert set(expl.activations) == {"conv", "spare", "pool", "fc"}
    expl = xai_core.explain(model, x, "activations", layers=["conv", "pool"])
    assert expl.activations["conv"].shape == (2, 8, 8, 4)
    cam = xai_core.explain(model, x, "grad_cam", layer="spare", target=0)
    np.testing.assert_array_equal(cam.attributions, 0)
    for method, options in [("grad_cam", {"layer": "never"}), ("activations", {"layers": "never"})]:
        with pytest.raises(xai_core.OptionError, match="'never' did not run"):
            xai_core.explain(model, x, method, **options)
    assert keras_state(model) == before


def test_lime_on_a_64_pixel_image_with_its_default_segmentation():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((64, 64, 3)),
            keras.layers.Conv2D(4, 3),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3),
        ]
    )
    x = images(1, 64)
    expl = xai_core.explain(model, x, "lime", n_samples=60, seed=0)
    assert expl.attributions.shape == x.shape and np.isfinite(expl.attributions).all()
    assert len(np.unique(expl.attributions[0, ..., 0])) > 4


def test_nested_blocks_are_accepted_by_name_and_listed_when_unknown():
    keras.utils.set_random_seed(0)
    block = keras.Sequential(
        [keras.layers.Dense(5, name="inner_a"), keras.layers.Dense(4, name="inner_b")], name="block"
    )
    model = keras.Sequential([keras.Input((3,)), block, keras.layers.Dense(2, name="head")])
    x = np.random.default_rng(0).normal(size=(2, 3)).astype(np.float32)
    expl = xai_core.explain(model, x, "activations", layers=["block", "inner_a"])
    np.testing.assert_allclose(expl.activations["block"], block(x).numpy(), rtol=1e-6)
    np.testing.assert_allclose(expl.activations["inner_a"], block.layers[0](x).numpy(), rtol=1e-6)
    with pytest.raises(xai_core.UnknownLayerError, match="accepted too: block"):
        xai_core.explain(model, x, "activations", layers=["blok"])
