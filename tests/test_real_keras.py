"""Real architectures, Keras: `keras.applications` as they ship, subclassed models."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import xai_core  # noqa: E402

from conftest import keras_state  # noqa: E402
from explainers_helpers import check_output_pick_and_chunking  # noqa: E402


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
    # a layer whose output the prediction never uses: an error, never zeros that say nothing
    with pytest.raises(xai_core.GradientNotReachedError, match="does not reach layer 'spare'"):
        xai_core.explain(model, x, "grad_cam", layer="spare", target=0)
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


class MaskedSegmenter(keras.Model):
    """call(x, keep=...) -> {"logits": (N, 8, 8, 3) per-pixel scores, "aux": ...}."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = keras.layers.Conv2D(3, 3, padding="same", name="conv")

    def call(self, x, keep=None, training=False):
        y = self.conv(x * keep)
        return {"logits": y, "aux": 2.0 * y}


def test_forward_kwargs_dict_outputs_and_pixel_targets_on_keras():
    keras.utils.set_random_seed(0)
    model = MaskedSegmenter()
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(3, 8, 8, 2)).astype(np.float32)
    mask = (rng.uniform(size=(3, 8, 8, 1)) > 0.3).astype(np.float32)
    model(x, keep=mask)
    kwargs = {"keep": mask}
    expl = xai_core.explain(
        model, x, "saliency", abs=False, target=(2, 3, 1), forward_kwargs=kwargs
    )
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = tf.reduce_sum(model(xt, keep=mask)["logits"][:, 2, 3, 1])
    np.testing.assert_allclose(
        expl.attributions, tape.gradient(y, xt).numpy(), rtol=1e-5, atol=1e-7
    )
    check_output_pick_and_chunking(model, x, expl, (2, 3, 1), (1, 1, 0), kwargs)


def test_a_float16_keras_model_is_explained_in_float32():
    keras.utils.set_random_seed(0)
    layers = [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)]
    full = keras.Sequential(layers)
    half = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="relu", dtype="float16"),
            keras.layers.Dense(3, dtype="float16"),
        ]
    )
    half.set_weights([w.astype(np.float16) for w in full.get_weights()])
    x = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    a = xai_core.explain(full, x, "saliency", target=1)
    b = xai_core.explain(half, x, "saliency", target=1)
    assert b.attributions.dtype == np.float32
    np.testing.assert_allclose(b.attributions, a.attributions, rtol=0.02, atol=2e-3)


class Scaled(keras.Model):
    def __init__(self) -> None:
        super().__init__()
        self.dense = keras.layers.Dense(3, name="dense")
        self.scale = 1.0

    def call(self, x):
        return self.dense(x) * self.scale


def test_explanations_follow_a_changed_subclassed_model():
    keras.utils.set_random_seed(0)
    model, x = Scaled(), np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32)
    before = xai_core.explain(model, x, "saliency", abs=False, target=0)
    model.scale = 10.0
    after = xai_core.explain(model, x, "saliency", abs=False, target=0)
    np.testing.assert_allclose(after.predictions, model(x).numpy(), rtol=1e-6)
    np.testing.assert_allclose(after.attributions, 10 * before.attributions, rtol=1e-5)


def test_explanations_follow_a_sequential_after_pop_and_add():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5), keras.layers.Dense(3)])
    x = np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32)
    xai_core.explain(model, x, "saliency")
    xai_core.explain(model, x, "activations")
    model.pop()
    model.add(keras.layers.Dense(2, name="new_head"))
    expl = xai_core.explain(model, x, "saliency", target=1)
    np.testing.assert_allclose(expl.predictions, model(x).numpy(), rtol=1e-6)
    captured = xai_core.explain(model, x, "activations", layers=["new_head"])
    np.testing.assert_allclose(captured.activations["new_head"], model(x).numpy(), rtol=1e-6)
