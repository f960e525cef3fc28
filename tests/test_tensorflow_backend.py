"""The TensorFlow/Keras backend: conformance for Sequential, functional and subclassed models."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
import keras  # noqa: E402

import xai_core  # noqa: E402
from xai_core.testing import AdapterConformance  # noqa: E402
from xai_core.testing.twins import cnn_weights, keras_cnn, keras_mlp, mlp_weights  # noqa: E402

from conftest import keras_state  # noqa: E402
from models import images, tabular  # noqa: E402

WEIGHTS = mlp_weights()


def numpy_fc1(inputs: np.ndarray) -> np.ndarray:
    """The first layer computed from the weights alone, without any framework."""
    return inputs @ WEIGHTS["fc1.weight"].T + WEIGHTS["fc1.bias"]


class KerasMLPChecks(AdapterConformance):
    layer = "fc1"
    kind = "sequential"

    def make_model(self):
        return keras_mlp(WEIGHTS, self.kind)

    def make_inputs(self):
        return tabular(3)

    def expected_activation(self, model, inputs, layer):
        return numpy_fc1(inputs)

    def model_state(self, model):
        return keras_state(model)


class TestKerasSequential(KerasMLPChecks):
    kind = "sequential"


class TestKerasFunctional(KerasMLPChecks):
    kind = "functional"


class TestKerasSubclassed(KerasMLPChecks):
    kind = "subclassed"


class TestKerasCNN(AdapterConformance):
    layer = "conv2"

    def make_model(self):
        return keras_cnn(cnn_weights(), "subclassed")

    def make_inputs(self):
        return images(3).transpose(0, 2, 3, 1)

    def make_wrong_inputs(self):
        return images(3)  # channels-first for a channels-last model

    def model_state(self, model):
        return keras_state(model)


def test_tensor_inputs_and_layer_names():
    model = keras_mlp(WEIGHTS, "functional")
    x = tabular(2)
    a = xai_core.explain(model, tf.constant(x), "saliency")
    b = xai_core.explain(model, x, "saliency")
    np.testing.assert_array_equal(a.attributions, b.attributions)
    assert [layer.name for layer in xai_core.adapt(model).layers()] == ["fc1", "relu", "fc2"]


def test_traced_once_per_input_signature_across_explain_calls():
    from xai_core_backends.tensorflow.adapter import _COMPILED

    model = keras_cnn(cnn_weights())
    for n in (1, 3, 5, 2):
        xai_core.explain(model, images(n).transpose(0, 2, 3, 1), "saliency")
        xai_core.explain(model, images(n).transpose(0, 2, 3, 1), "integrated_gradients")
    traces = [fn.experimental_get_tracing_count() for fn in _COMPILED[model][1].values()]
    assert traces and traces == [1] * len(traces)  # (one gradient pass, no forward: issue 21)


def test_compiled_functions_do_not_keep_the_model_alive():
    import gc
    import weakref

    from xai_core_backends.tensorflow.adapter import _COMPILED

    model = keras_mlp(WEIGHTS)
    xai_core.explain(model, tabular(2), "saliency")
    xai_core.explain(model, tabular(2), "activations", layers=["fc1"])  # compiled sub-model
    assert any(key[0] == "capture" for key in _COMPILED[model][1])
    ref, size = weakref.ref(model), len(_COMPILED)
    del model
    gc.collect()
    assert ref() is None and len(_COMPILED) <= size - 1


def test_no_attribute_left_behind_after_an_error_inside_a_layer():
    model = keras_mlp(WEIGHTS, "subclassed")
    before = keras_state(model)
    fc2 = model.get_layer("fc2")
    fc2_call = type(fc2).call

    def broken(self, *args, **kwargs):
        raise RuntimeError("fc2 broke")

    type(fc2).call = broken
    try:
        with pytest.raises(RuntimeError, match="fc2 broke"):
            xai_core.adapt(model).capture(tabular(2), ["fc1"])
    finally:
        type(fc2).call = fc2_call
    assert keras_state(model) == before
    assert "call" not in vars(model.get_layer("fc1"))


def test_keras_model_decided_before_torch():
    # the torch backend declines keras classes even if they subclass nn.Module
    from xai_core_backends.pytorch import plugin

    assert plugin.xai_adapt(keras_mlp(WEIGHTS)) is None
    assert xai_core.adapt(keras_mlp(WEIGHTS)).backend == "tensorflow"


def test_training_flag_is_false_during_explanations():
    seen = []

    class Probe(keras.layers.Layer):
        def call(self, x, training=None):
            seen.append(training)
            return x

    model = keras.Sequential([keras.Input((6,)), Probe(), keras.layers.Dense(3)])
    xai_core.explain(model, tabular(2), "saliency")
    assert seen and not any(seen)


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_activations_equal_a_functional_sub_model(kind):
    # the direct computation: Keras's own sub-model on the known graph, no wrapping
    model, x = keras_cnn(cnn_weights(), kind), images(3).transpose(0, 2, 3, 1)
    names = [layer.name for layer in xai_core.adapt(model).layers()]
    expl = xai_core.explain(model, x, "activations", layers=None)
    direct = keras.Model(model.inputs, [model.get_layer(n).output for n in names])(x)
    for name, value in zip(names, direct):
        np.testing.assert_allclose(expl.activations[name], np.asarray(value), rtol=1e-5, atol=1e-6)
    assert expl.options["channels_last"] is True


def test_feature_maps_of_a_channels_last_layer():
    from xai_core.plotting import plot_feature_maps

    model, x = keras_cnn(cnn_weights()), images(2).transpose(0, 2, 3, 1)
    acts = xai_core.explain(model, x, "activations", layers="conv1")
    fig = plot_feature_maps(acts, sample=0)
    drawn = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    np.testing.assert_allclose(drawn[3], acts.activations["conv1"][0, :, :, 3])
