"""LRP (issue 22): Captum's rules give Captum 0.9's numbers, including those its own
tests hard-code; the z+ rule and zennit's composites give zennit 0.5's numbers on the
same models (a ResNet with a reused in-place ReLU and residual adds included); relevance
is conserved where the rules promise it (a bias-free VGG-style stack) on PyTorch, Keras
and Paddle; the model is left as it was. The Keras and Paddle twins' agreement with
PyTorch is in test_cross_framework.py.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import xai_core

from conftest import torch_state
from real_models import resnet
from reference_checks import assert_close
from test_modified_backprop import OneConv
from zennit_reference import zennit

captum_attr = pytest.importorskip("captum.attr")
lrp_rules = pytest.importorskip("captum.attr._utils.lrp_rules")


def captum_lrp(model, x, target, rules=None):
    """Captum's LRP, with `rules` (module -> rule) set for the call only."""
    for module, rule in (rules or {}).items():
        module.rule = rule
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = captum_attr.LRP(model).attribute(torch.from_numpy(x), target=target)
        return out.detach().numpy()
    finally:
        for module in rules or {}:  # Captum removes them itself, unless it failed first
            if hasattr(module, "rule"):
                del module.rule


def zennit_lrp(model, x, target, composite):
    """zennit's relevance under `composite`, started from the target output's value
    (Captum's convention, which xai_core keeps)."""
    inputs = torch.from_numpy(x).requires_grad_(True)
    with composite.context(model) as ruled:
        out = ruled(inputs)
        start = torch.zeros_like(out)
        rows = torch.arange(len(x))
        start[rows, target] = out[rows, target].detach()
        (relevance,) = torch.autograd.grad(out, inputs, start)
    return relevance.numpy()


# -- models --------------------------------------------------------------------------------
class SimpleLRPModel(nn.Module):
    """Captum's SimpleLRPModel: Linear(2.0) - ReLU - Linear(3.0) - Dropout, no biases."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 3, bias=False)
        self.linear.weight.data.fill_(2.0)
        self.relu = nn.ReLU()
        self.linear2 = nn.Linear(3, 1, bias=False)
        self.linear2.weight.data.fill_(3.0)
        self.dropout = nn.Dropout(p=0.01)

    def forward(self, x):
        return self.dropout(self.linear2(self.relu(self.linear(x))))


class PooledCNN(nn.Module):
    """Conv - BatchNorm - ReLU - MaxPool - Conv - ReLU - global average - Linear - ReLU -
    Linear: every layer kind Captum's LRP rules, with biases and BatchNorm statistics."""

    def __init__(self, seed: int = 0, bias: bool = True) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=bias)
        self.bn = nn.BatchNorm2d(8)
        self.relu1 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1, bias=bias)
        self.relu2 = nn.ReLU()
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(16, 12, bias=bias)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(12, 4, bias=bias)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.2, 0.2)
            self.bn.running_var.uniform_(0.5, 1.5)
        self.eval()

    def weighted(self):
        return [self.conv1, self.conv2, self.fc1, self.fc2]

    def forward(self, x):
        x = self.pool(self.relu1(self.bn(self.conv1(x))))
        x = self.gap(self.relu2(self.conv2(x)))
        return self.fc2(self.relu3(self.fc1(torch.flatten(x, 1))))


def torch_vgg(seed: int = 0) -> nn.Module:
    """A bias-free VGG-style stack (conv-relu x2, max-pool, conv-relu, average pool,
    classifier), without BatchNorm: LRP-0 and z+ conserve relevance through it."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, bias=False),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1, bias=False),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 24, bias=False),
        nn.ReLU(),
        nn.Linear(24, 5, bias=False),
    )
    return model.eval()


def images(n: int, side: int = 8, seed: int = 0, channels: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, channels, side, side)).astype(np.float32)


# -- Captum's own hard-coded numbers (captum/tests/attr/test_lrp.py) ------------------------
def test_lrp_gives_captums_basic_numbers_with_zero_delta():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    e = xai_core.explain(OneConv(), x, "lrp")
    assert_close(e.attributions, [[[[0, 1, 2, 3], [0, 5, 6, 7], [0, 9, 10, 11], [0, 0, 0, 0]]]])
    assert abs(float(e.convergence_delta[0])) < 1e-5


@pytest.mark.parametrize(
    "rule, first_weight, expected",
    [
        ("epsilon", 2.0, [[18.0, 36.0, 54.0]]),
        ("gamma", -2.0, [[28 / 3, 104 / 3, 52]]),
        ("alpha1-beta0", -2.0, [[12, 33.6, 50.4]]),
    ],
)
def test_lrp_rules_give_captums_simple_model_numbers(rule, first_weight, expected):
    model = SimpleLRPModel().eval()
    with torch.no_grad():
        model.linear.weight[0, 0] = first_weight
    x = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    # Captum's test uses GammaRule(gamma=1) on the first layer and the default 0.25 on the
    # second, whose weights are all positive: there gamma does not change the relevance
    e = xai_core.explain(model, x, "lrp", rule=rule, gamma=1.0)
    assert_close(e.attributions, expected)


def test_lrp_gives_captums_batch_numbers():
    x = np.array([[1.0, 2.0, 3.0], [3.0, 6.0, 9.0]], dtype=np.float32)
    e = xai_core.explain(SimpleLRPModel().eval(), x, "lrp", target=0)
    assert_close(e.attributions, [[18.0, 36.0, 54.0], [54.0, 108.0, 162.0]])


def test_lrp_skips_tanh_as_captums_numbers_say():
    model = nn.Sequential(nn.Linear(3, 3, bias=False), nn.Tanh(), nn.Linear(3, 1, bias=False))
    for layer in (model[0], model[2]):
        layer.weight.data.fill_(0.1)
    e = xai_core.explain(model, np.array([[1.0, 2.0, 3.0]], np.float32), "lrp")
    # Captum's numbers are rounded to 4 places ("result if tanh is skipped")
    np.testing.assert_allclose(e.attributions, [[0.0269, 0.0537, 0.0806]], atol=1e-4)


@pytest.mark.parametrize(
    "model, x, target, expected",
    [
        (
            "linear_maxpool1d",
            [[[1.0, 2.0], [5.0, 6.0]]],
            (1, 0),
            [[[0.0, 0.0], [10, 12]]],
        ),
        ("maxpool2d", [[[[1.0, 2.0], [5.0, 6.0]]]], (0, 0, 0), [[[[0.0, 0.0], [0.0, 6.0]]]]),
        (
            "maxpool3d",
            [[[[[1.0, 2.0], [5.0, 6.0]], [[3.0, 4.0], [7.0, 8.0]]]]],
            (0, 0, 0, 0),
            [[[[[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 8.0]]]]],
        ),
    ],
)
def test_lrp_max_pooling_gives_captums_numbers(model, x, target, expected):
    if model == "linear_maxpool1d":
        linear = nn.Linear(2, 2, bias=False)
        linear.weight.data.fill_(2.0)
        module = nn.Sequential(linear, nn.MaxPool1d(2))
    else:
        module = nn.Sequential(nn.MaxPool2d(2) if model == "maxpool2d" else nn.MaxPool3d(2))
    e = xai_core.explain(module, np.array(x, np.float32), "lrp", target=target)
    assert_close(e.attributions, expected)


def test_lrp_epsilon_equals_input_x_gradient_on_a_bias_free_relu_network():
    """Captum's equivalence test: LRP-epsilon on Linear-ReLU-Linear is Input x Gradient."""
    x = np.array([[1.0, 2.0, 3.0]], np.float32)
    lrp = xai_core.explain(SimpleLRPModel().eval(), x, "lrp").attributions
    ixg = captum(captum_attr.InputXGradient, SimpleLRPModel().eval(), x)
    assert_close(lrp, ixg)


def captum(cls, model, x, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls(model).attribute(torch.from_numpy(x), **kwargs).detach().numpy()


# -- Captum on models with every kind of layer ------------------------------------------------
@pytest.mark.parametrize("rule", ["epsilon", "gamma", "alpha1-beta0"])
def test_lrp_rules_equal_captums_on_a_cnn_with_batchnorm_and_pooling(rule):
    model = PooledCNN()
    x = images(4)
    captum_rule = {"epsilon": None, "gamma": "GammaRule", "alpha1-beta0": "Alpha1_Beta0_Rule"}
    rules = None
    if captum_rule[rule] is not None:
        cls = getattr(lrp_rules, captum_rule[rule])
        rules = {m: cls() for m in model.weighted()}
    target = np.array([0, 1, 2, 3])
    expected = captum_lrp(model, x, torch.from_numpy(target), rules)
    before = torch_state(model)
    e = xai_core.explain(model, x, "lrp", rule=rule, target=target)
    assert_close(e.attributions, expected)
    assert torch_state(model) == before
    # Captum's delta: f(x)[target] - sum(relevance)
    f = model(torch.from_numpy(x)).detach().numpy()[np.arange(4), target]
    np.testing.assert_allclose(
        e.convergence_delta, f - expected.reshape(4, -1).sum(1), rtol=1e-4, atol=1e-5
    )


def test_lrp_equals_captums_with_a_batchnorm_without_affine_parameters():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(6)
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.bn = nn.BatchNorm2d(4, affine=False)
            self.relu = nn.ReLU()
            self.fc = nn.Linear(4 * 8 * 8, 3)
            with torch.no_grad():
                self.bn.running_var.uniform_(0.5, 1.5)

        def forward(self, x):
            return self.fc(torch.flatten(self.relu(self.bn(self.conv(x))), 1))

    model = Net().eval()
    x = images(2, seed=6)
    e = xai_core.explain(model, x, "lrp", target=1)
    assert_close(e.attributions, captum_lrp(model, x, 1))


def test_lrp_epsilon_option_is_captums_epsilon():
    model = PooledCNN(seed=2)
    x = images(2, seed=2)
    rules = {m: lrp_rules.EpsilonRule(epsilon=0.5) for m in model.weighted()}
    rules.update({model.bn: lrp_rules.EpsilonRule(0.5), model.pool: lrp_rules.EpsilonRule(0.5)})
    rules[model.gap] = lrp_rules.EpsilonRule(0.5)
    expected = captum_lrp(model, x, 1, rules)
    e = xai_core.explain(model, x, "lrp", epsilon=0.5, target=1)
    assert_close(e.attributions, expected)


# -- zennit: z+ and the composites ------------------------------------------------------------
def zennit_z_plus(eps):
    """The composite that is xai_core's rule="z+": ZPlus on Linear and convolutions, the
    epsilon rule on pooling and BatchNorm, activations passing relevance on."""
    rules, composites, ztypes = zennit("rules"), zennit("composites"), zennit("types")
    return composites.LayerMapComposite(
        [
            (ztypes.Activation, rules.Pass()),
            (ztypes.Linear, rules.ZPlus(stabilizer=eps)),
            (ztypes.AvgPool, rules.Epsilon(eps)),
            (ztypes.MaxPool, rules.Epsilon(eps)),
            (ztypes.BatchNorm, rules.Epsilon(eps)),
        ]
    )


@pytest.mark.parametrize("model", ["cnn", "resnet"])
def test_lrp_z_plus_equals_zennits(model):
    net = PooledCNN(seed=1) if model == "cnn" else resnet(seed=1)
    x = images(3, seed=1)
    target = np.array([0, 2, 1])
    expected = zennit_lrp(net, x, target, zennit_z_plus(1e-9))
    e = xai_core.explain(net, x, "lrp", rule="z+", target=target)
    assert_close(e.attributions, expected)


@pytest.mark.parametrize(
    "composite", ["epsilon_plus_flat", "epsilon_plus", "epsilon_alpha2_beta1_flat"]
)
@pytest.mark.parametrize("model", ["cnn", "resnet", "vgg"])
def test_lrp_composites_equal_zennits(composite, model):
    composites = zennit("composites")
    cls = {
        "epsilon_plus_flat": composites.EpsilonPlusFlat,
        "epsilon_plus": composites.EpsilonPlus,
        "epsilon_alpha2_beta1_flat": composites.EpsilonAlpha2Beta1Flat,
    }[composite]
    net = {"cnn": PooledCNN, "resnet": resnet, "vgg": torch_vgg}[model](seed=3)
    side = 8 if model != "vgg" else 16
    x = images(3, side=side, seed=3)
    target = np.array([1, 0, 3])
    expected = zennit_lrp(net, x, target, cls())
    before = torch_state(net)
    e = xai_core.explain(net, x, "lrp", composite=composite, target=target)
    assert_close(e.attributions, expected)
    assert torch_state(net) == before


# -- conservation on real architectures, every framework --------------------------------------
def assert_conserved(e, f_of_target):
    sums = e.attributions.reshape(len(f_of_target), -1).sum(axis=1, dtype=np.float64)
    np.testing.assert_allclose(sums, f_of_target, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(e.convergence_delta, 0.0, atol=1e-3 * np.abs(f_of_target).max())


@pytest.mark.parametrize("rule", ["epsilon", "z+"])
def test_lrp_conserves_relevance_on_a_bias_free_vgg_stack(rule):
    model = torch_vgg()
    x = np.abs(images(3, side=16, seed=4))
    e = xai_core.explain(model, x, "lrp", rule=rule, target=2)
    f = model(torch.from_numpy(x)).detach().numpy()[:, 2]
    assert_conserved(e, f)


def test_lrp_on_a_resnet_runs_every_layer_kind_and_leaves_the_model_alone():
    """Residual adds are not ruled (no Add kind): relevance goes to both branches, so it
    is not conserved there (as in Captum and zennit without canonizers); the numbers are
    checked against zennit above, here the model's state and a finite answer."""
    model = resnet(seed=5)
    before = torch_state(model)
    e = xai_core.explain(model, images(2, seed=5), "lrp", composite="epsilon_plus_flat")
    assert np.isfinite(e.attributions).all() and np.abs(e.attributions).sum() > 0
    assert torch_state(model) == before


# -- errors -----------------------------------------------------------------------------------
def test_lrp_refuses_a_softmax_output_naming_the_layer():
    model = nn.Sequential(nn.Linear(3, 4), nn.Softmax(dim=1))
    with pytest.raises(xai_core.XaiError, match="'1' is a softmax"):
        xai_core.explain(model, np.ones((1, 3), np.float32), "lrp")


@pytest.mark.parametrize(
    "options, message",
    [
        ({"rule": "z-"}, "rule must be one of"),
        ({"composite": "epsilon_gamma_box"}, "composite must be one of"),
        ({"rule": "gamma", "composite": "epsilon_plus"}, "not both"),
    ],
)
def test_lrp_bad_options_say_what_is_allowed(options, message):
    with pytest.raises(xai_core.XaiError, match=message):
        xai_core.explain(SimpleLRPModel().eval(), np.ones((1, 3), np.float32), "lrp", **options)


def test_lrp_warns_about_layers_it_has_no_rule_for():
    model = nn.Sequential(nn.Linear(3, 4), nn.GELU(), nn.Linear(4, 2))
    with pytest.warns(UserWarning, match="no rule for layers"):
        xai_core.explain(model, np.ones((1, 3), np.float32), "lrp")


def test_lrp_with_two_inputs_equals_captums():
    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.a, self.b = nn.Linear(4, 8), nn.Linear(3, 8)
            self.relu, self.out = nn.ReLU(), nn.Linear(8, 3)

        def forward(self, x1, x2):
            return self.out(self.relu(self.a(x1) + self.b(x2)))

    model = TwoInputs().eval()
    rng = np.random.default_rng(0)
    x1, x2 = rng.random((2, 4), np.float32), rng.random((2, 3), np.float32)
    ours = xai_core.explain(model, (x1, x2), "lrp", target=0).attributions
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = captum_attr.LRP(model).attribute((torch.from_numpy(x1), torch.from_numpy(x2)), 0)
    for a, r in zip(ours, ref):
        assert_close(a, r.detach().numpy())


def test_lrp_on_token_ids_says_to_attribute_to_the_embedding():
    model = nn.Sequential(nn.Embedding(5, 4), nn.Flatten(), nn.Linear(12, 2))
    with pytest.raises(xai_core.InputError, match="integers"):
        xai_core.explain(model, np.array([[1, 2, 3]]), "lrp", target=0)
