"""DeepLift and Guided Backprop on real Keras and Paddle architectures (issue 22): a
ResNet (BatchNorm, residual adds, a ReLU called per block) and a VGG-style stack with
max-pooling in each framework. DeepLift's completeness, sum = f(x) - f(baseline), is the
reference: it holds only if every rule saw the right input, output and gradient on every
call. The twins' agreement with PyTorch is in test_cross_framework.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import xai_core

RTOL = 1e-3


def images(n: int, shape: tuple[int, ...], seed: int, scale: float = 1.0) -> np.ndarray:
    return (scale * np.random.default_rng(seed).normal(size=(n, *shape))).astype(np.float32)


def assert_complete(explanation, f, x, baselines):
    rows = np.arange(len(x))
    gap = f(x)[rows, explanation.target] - f(baselines)[rows, explanation.target]
    sums = explanation.attributions.reshape(len(x), -1).sum(axis=1, dtype=np.float64)
    np.testing.assert_allclose(sums, gap, rtol=RTOL, atol=1e-6)


def own_gradient_rule():
    """(the kinds it was called for, a rule that gives each layer's own input gradient)."""
    calls = []

    def own(ops, call):
        calls.append(call.kind)
        return call.grad_in

    return calls, own


# -- Paddle ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def paddle():
    return pytest.importorskip("paddle")


def paddle_vgg(paddle):
    nn = paddle.nn
    paddle.seed(1)
    layers = []
    for c_in, c_out in [(3, 8), (8, 16)]:
        layers += [nn.Conv2D(c_in, c_out, 3, padding=1), nn.ReLU()]
        layers += [nn.Conv2D(c_out, c_out, 3, padding=1), nn.ReLU(), nn.MaxPool2D(3, 2, 1)]
    model = nn.Sequential(
        *layers, nn.Flatten(), nn.Linear(16 * 4 * 4, 32), nn.ReLU(), nn.Linear(32, 5)
    )
    model.eval()
    return model


@pytest.mark.parametrize("architecture", ["resnet18", "vgg"])
def test_paddle_deeplift_is_complete_on_real_architectures(paddle, architecture):
    if architecture == "resnet18":
        paddle.seed(0)
        model = paddle.vision.models.resnet18(num_classes=5)
        model.eval()
    else:
        model = paddle_vgg(paddle)
    x = images(2, (3, 16, 16), seed=0)
    baselines = images(2, (3, 16, 16), seed=1, scale=0.1)
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    e = xai_core.explain(model, x, "deeplift", baselines=baselines)
    assert_complete(
        e, lambda a: model(paddle.to_tensor(a)).numpy().astype(np.float64), x, baselines
    )
    after = model.state_dict()
    assert all(np.array_equal(before[k], after[k].numpy()) for k in before)
    assert not any(
        layer._forward_pre_hooks or layer._forward_post_hooks for layer in model.sublayers()
    )


def test_paddle_guided_backprop_keeps_only_positive_relu_gradients(paddle):
    """On the VGG stack: the input gradient with every ReLU's backward clipped at 0, as
    computed by hand from the layers' own gradients (NumPy, layer by layer)."""
    model = paddle_vgg(paddle)
    x = images(2, (3, 16, 16), seed=2)
    guided = xai_core.explain(model, x, "guided_backprop", target=1).attributions
    plain = xai_core.explain(model, x, "saliency", abs=False, target=1).attributions
    assert np.isfinite(guided).all() and not np.allclose(guided, plain)
    # a model of one ReLU: guided backprop is the ReLU's gradient kept where positive
    relu = paddle.nn.Sequential(paddle.nn.ReLU())
    z = images(3, (4,), seed=3)
    got = xai_core.explain(relu, z, "guided_backprop", target=0).attributions
    np.testing.assert_array_equal(got, np.eye(4, dtype=np.float32)[[0, 0, 0]] * (z[:, :1] > 0))


# -- Keras -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def keras():
    pytest.importorskip("tensorflow")
    return pytest.importorskip("keras")


def keras_vgg(keras):
    """Conv blocks with ReLUs built into the layers (`activation="relu"`), as Keras users
    write them, and a Dense ReLU head."""
    L = keras.layers
    keras.utils.set_random_seed(1)
    layers = [keras.Input((16, 16, 3))]
    for width in (8, 16):
        layers += [L.Conv2D(width, 3, padding="same", activation="relu")]
        layers += [L.Conv2D(width, 3, padding="same", activation="relu"), L.MaxPooling2D(2)]
    layers += [L.Flatten(), L.Dense(32, activation="relu"), L.Dense(5)]
    return keras.Sequential(layers)


@pytest.mark.parametrize("architecture", ["resnet50", "vgg"])
def test_keras_deeplift_is_complete_on_real_architectures(keras, architecture):
    if architecture == "resnet50":
        keras.utils.set_random_seed(0)
        model = keras.applications.ResNet50(
            weights=None, input_shape=(32, 32, 3), classes=5, classifier_activation=None
        )
        shape = (32, 32, 3)
    else:
        model, shape = keras_vgg(keras), (16, 16, 3)
    x, baselines = images(2, shape, seed=0), images(2, shape, seed=1, scale=0.1)
    weights = [w.copy() for w in model.get_weights()]
    attributes = [dict(vars(layer)) for layer in model.layers]
    e = xai_core.explain(model, x, "deeplift", baselines=baselines)
    assert_complete(e, lambda a: np.asarray(model(a, training=False), np.float64), x, baselines)
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights()))
    assert [dict(vars(layer)) for layer in model.layers] == attributes  # nothing left behind


def test_keras_builtin_relu_activations_are_ruled(keras):
    """`Dense(..., activation="relu")` has its ReLU inside: Guided Backprop must clip it as
    it clips a ReLU layer; the same weights written with separate ReLU layers agree."""
    L = keras.layers
    keras.utils.set_random_seed(2)
    built_in = keras.Sequential([keras.Input((6,)), L.Dense(8, activation="relu"), L.Dense(3)])
    separate = keras.Sequential([keras.Input((6,)), L.Dense(8), L.ReLU(), L.Dense(3)])
    separate.set_weights(built_in.get_weights())
    x = images(4, (6,), seed=4)
    methods = [("guided_backprop", {}), ("deconvolution", {}), ("deeplift", {})]
    methods += [("lrp", {"rule": "z+"}), ("lrp", {"composite": "epsilon_plus_flat"})]
    for method, options in methods:
        a = xai_core.explain(built_in, x, method, target=2, **options).attributions
        b = xai_core.explain(separate, x, method, target=2, **options).attributions
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    plain = xai_core.explain(built_in, x, "saliency", abs=False, target=2).attributions
    guided = xai_core.explain(built_in, x, "guided_backprop", target=2).attributions
    assert not np.allclose(plain, guided)


@pytest.mark.parametrize(
    "stride, padding, dilation, groups", [(1, 1, 1, 1), (2, 0, 1, 1), (1, 2, 2, 2)]
)
def test_paddle_writes_out_the_backward_of_linear_layers_for_rules(
    paddle, stride, padding, dilation, groups
):
    """Paddle runs no autograd inside a rule, so Linear, Conv (the transposed convolution)
    and inference BatchNorm have their backward written out: with each layer's own gradient
    as the rule the gradient is the plain one, and a rule doubling them doubles it per layer."""
    nn = paddle.nn
    paddle.seed(3)
    conv = nn.Conv2D(2, 4, 3, stride=stride, padding=padding, dilation=dilation, groups=groups)
    x = images(2, (2, 9, 9), seed=5)
    width = int(np.prod(conv(paddle.to_tensor(x)).shape[1:]))
    model = nn.Sequential(conv, nn.BatchNorm2D(4), nn.ReLU(), nn.Flatten(), nn.Linear(width, 3))
    bn = model[1]
    bn._mean.set_value(np.linspace(-0.5, 0.5, 4).astype("float32"))
    bn._variance.set_value(np.linspace(0.5, 2.0, 4).astype("float32"))
    model.eval()
    adapter, target = xai_core.adapt(model), np.array([1, 2])
    calls, own = own_gradient_rule()

    def doubled(ops, call):
        return call.grad_in * 2

    kinds = ("relu", "linear", "conv", "batchnorm")
    with adapter.session():
        plain, _ = adapter.gradients_and_outputs(x, target)
        ruled, _ = adapter.rule_gradients(x, target, dict.fromkeys(kinds, own))
        twice, _ = adapter.rule_gradients(x, target, dict.fromkeys(kinds[1:], doubled))
    assert sorted(calls) == sorted(kinds)
    np.testing.assert_allclose(ruled, plain, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(twice, 8 * plain, rtol=1e-5, atol=1e-7)


# -- LRP: conservation where the rules promise it, the model left alone elsewhere -------------
def assert_conserved(e, f_of_target):
    sums = e.attributions.reshape(len(f_of_target), -1).sum(axis=1, dtype=np.float64)
    np.testing.assert_allclose(sums, f_of_target, rtol=RTOL, atol=1e-6)


def paddle_bias_free_vgg(paddle):
    nn = paddle.nn
    paddle.seed(4)
    model = nn.Sequential(
        nn.Conv2D(3, 8, 3, padding=1, bias_attr=False),
        nn.ReLU(),
        nn.Conv2D(8, 8, 3, padding=1, bias_attr=False),
        nn.ReLU(),
        nn.MaxPool2D(2),
        nn.Conv2D(8, 16, 3, padding=1, bias_attr=False),
        nn.ReLU(),
        nn.AvgPool2D(2),
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 24, bias_attr=False),
        nn.ReLU(),
        nn.Linear(24, 5, bias_attr=False),
    )
    model.eval()
    return model


def keras_bias_free_vgg(keras):
    L = keras.layers
    keras.utils.set_random_seed(4)
    return keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            L.Conv2D(8, 3, padding="same", activation="relu", use_bias=False),
            L.Conv2D(8, 3, padding="same", activation="relu", use_bias=False),
            L.MaxPooling2D(2),
            L.Conv2D(16, 3, padding="same", activation="relu", use_bias=False),
            L.AveragePooling2D(2),
            L.Flatten(),
            L.Dense(24, activation="relu", use_bias=False),
            L.Dense(5, use_bias=False),
        ]
    )


@pytest.mark.parametrize("rule", ["epsilon", "z+"])
def test_paddle_lrp_conserves_relevance_on_a_bias_free_vgg_stack(paddle, rule):
    model = paddle_bias_free_vgg(paddle)
    x = np.abs(images(3, (3, 16, 16), seed=6))
    e = xai_core.explain(model, x, "lrp", rule=rule, target=1)
    assert_conserved(e, model(paddle.to_tensor(x)).numpy()[:, 1].astype(np.float64))


@pytest.mark.parametrize("rule", ["epsilon", "z+"])
def test_keras_lrp_conserves_relevance_on_a_bias_free_vgg_stack(keras, rule):
    model = keras_bias_free_vgg(keras)
    x = np.abs(images(3, (16, 16, 3), seed=6))
    e = xai_core.explain(model, x, "lrp", rule=rule, target=1)
    assert_conserved(e, np.asarray(model(x, training=False), np.float64)[:, 1])


def test_paddle_lrp_on_a_resnet18_leaves_the_model_as_it_was(paddle):
    paddle.seed(0)
    model = paddle.vision.models.resnet18(num_classes=5)
    model.eval()
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    for options in ({"rule": "gamma"}, {"composite": "epsilon_plus_flat"}):
        e = xai_core.explain(model, images(2, (3, 16, 16), seed=7), "lrp", **options)
        assert np.isfinite(e.attributions).all() and np.abs(e.attributions).sum() > 0
    after = model.state_dict()
    assert all(np.array_equal(before[k], after[k].numpy()) for k in before)
    assert not any(
        layer._forward_pre_hooks or layer._forward_post_hooks for layer in model.sublayers()
    )


def test_keras_lrp_on_a_resnet50_leaves_the_model_as_it_was(keras):
    keras.utils.set_random_seed(0)
    model = keras.applications.ResNet50(
        weights=None, input_shape=(32, 32, 3), classes=5, classifier_activation=None
    )
    weights = [w.copy() for w in model.get_weights()]
    attributes = [dict(vars(layer)) for layer in model.layers]
    with pytest.warns(UserWarning, match="no rule for layers"):  # ZeroPadding2D, Add
        e = xai_core.explain(model, images(2, (32, 32, 3), seed=7), "lrp", rule="z+")
    assert np.isfinite(e.attributions).all() and np.abs(e.attributions).sum() > 0
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights()))
    assert [dict(vars(layer)) for layer in model.layers] == attributes


@pytest.mark.parametrize(
    "pool",
    [
        "AvgPool2D(3, 2, 1)",
        "AvgPool2D(3, 2, 1, exclusive=False)",
        "AvgPool2D(2, divisor_override=3)",
        "AdaptiveAvgPool2D(1)",
        "AdaptiveAvgPool2D(3)",
    ],
)
def test_paddle_writes_out_the_backward_of_average_pooling_for_rules(paddle, pool):
    """Average pooling's backward written out (no autograd inside a Paddle rule): with
    each layer's own gradient as the rule, the gradient is the plain one."""
    nn = paddle.nn
    paddle.seed(5)
    layer = eval(f"nn.{pool}", {"nn": nn})
    x = images(2, (2, 9, 9), seed=8)
    width = int(np.prod(layer(paddle.to_tensor(x)).shape[1:]))
    model = nn.Sequential(layer, nn.Flatten(), nn.Linear(width, 3))
    model.eval()
    adapter, target = xai_core.adapt(model), np.array([1, 2])
    calls, own = own_gradient_rule()

    with adapter.session():
        plain, _ = adapter.gradients_and_outputs(x, target)
        ruled, _ = adapter.rule_gradients(x, target, {"avgpool": own})
    assert calls == ["avgpool"]
    np.testing.assert_allclose(ruled, plain, rtol=1e-5, atol=1e-7)


def test_paddle_refuses_an_average_pool_it_cannot_write_out_naming_it(paddle):
    model = paddle.nn.Sequential(paddle.nn.AvgPool2D(2, ceil_mode=True), paddle.nn.Flatten())
    model.eval()
    with pytest.raises(xai_core.CapabilityError, match="layer '0'"):
        xai_core.explain(model, images(1, (1, 5, 5), seed=9), "lrp", target=0)
