"""Modified backpropagation (issue 22): Guided Backprop, Deconvolution, Input x Gradient
and DeepLift equal Captum 0.9 on the same PyTorch models, including the numbers Captum's
own tests hard-code; DeepLift's completeness holds on real architectures (a ResNet with
BatchNorm, a reused in-place ReLU and residual adds, which Captum refuses); the model is
left as it was, also when a rule fails half-way. The same methods on the Keras and Paddle
twins are in test_cross_framework.py.
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
from reference_checks import assert_close, captum_attribute

captum_attr = pytest.importorskip("captum.attr")


def captum(cls, model, x, **kwargs):
    return captum_attribute(cls(model), x, **kwargs)


# -- the architectures of Captum's own test models, with their fixed weights -------------
class OneConv(nn.Module):
    """Captum's BasicModel_ConvNet_One_Conv: conv(ones, bias -50/-75), ReLU, fc, ReLU."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 3, 1)
        self.relu1 = nn.ReLU(inplace=inplace)
        self.fc1 = nn.Linear(8, 4)
        self.relu2 = nn.ReLU(inplace=inplace)
        with torch.no_grad():
            self.conv1.weight.fill_(1.0)
            self.conv1.bias.copy_(torch.tensor([-50.0, -75.0]))
            self.fc1.weight.copy_(torch.cat([torch.ones(4, 5), -torch.ones(4, 3)], dim=1))
            self.fc1.bias.zero_()

    def forward(self, x, x2=None):
        x = x if x2 is None else x + x2
        return self.relu2(self.fc1(self.relu1(self.conv1(x)).view(-1, 8)))


class TwoRelus(nn.Module):
    """Captum's ReLUDeepLiftModel: 2 relu(x1) + 2 relu(x2 - 1.5)."""

    def __init__(self) -> None:
        super().__init__()
        self.relu1, self.relu2 = nn.ReLU(), nn.ReLU()

    def forward(self, x1, x2):
        return 2 * self.relu1(x1) + 2 * self.relu2(x2 - 1.5)


class LinearMaxPoolLinear(nn.Module):
    """Captum's LinearMaxPoolLinearModel: identity, max over 4, times 1."""

    def __init__(self) -> None:
        super().__init__()
        self.lin1 = nn.Linear(4, 4, bias=False)
        self.pool1 = nn.MaxPool1d(4)
        self.lin2 = nn.Linear(1, 1, bias=False)
        with torch.no_grad():
            self.lin1.weight.copy_(torch.eye(4))
            self.lin2.weight.fill_(1.0)

    def forward(self, x):
        return self.lin2(self.pool1(self.lin1(x.unsqueeze(1)))[:, 0, :])


class ConvNet(nn.Module):
    """Captum's BasicModel_ConvNet: two conv-ReLU-maxpool stages, fc-ReLU-fc, softmax.
    Its all-ones fc weights move every logit alike, so the softmax's gradient is 0 up to
    float noise: `ones=False` draws them instead, for comparisons of values."""

    def __init__(self, ones: bool = True) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1, self.relu1, self.pool1 = nn.Conv2d(1, 2, 3, 1), nn.ReLU(), nn.MaxPool2d(2)
        self.conv2, self.relu2, self.pool2 = nn.Conv2d(2, 4, 3, 1), nn.ReLU(), nn.MaxPool2d(2)
        self.fc1, self.relu3, self.fc2 = nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 10)
        self.softmax = nn.Softmax(dim=1)
        if ones:
            with torch.no_grad():
                self.fc1.weight.fill_(1.0)
                self.fc2.weight.fill_(1.0)

    def forward(self, x):
        x = self.pool2(self.relu2(self.conv2(self.pool1(self.relu1(self.conv1(x))))))
        return self.softmax(self.fc2(self.relu3(self.fc1(x.view(-1, 4)))))


class ReLULinear(nn.Module):
    """Captum's ReLULinearModel: l3(relu(cat(l1(x1), l2(x2))))."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.l1, self.l2 = nn.Linear(3, 1, bias=False), nn.Linear(3, 1, bias=False)
        self.relu, self.l3 = nn.ReLU(inplace=inplace), nn.Linear(2, 1, bias=False)
        with torch.no_grad():
            self.l1.weight.copy_(torch.tensor([[3.0, 1.0, 0.0]]))
            self.l2.weight.copy_(torch.tensor([[2.0, 3.0, 0.0]]))
            self.l3.weight.fill_(1.0)

    def forward(self, x1, x2):
        return self.l3(self.relu(torch.cat([self.l1(x1), self.l2(x2)], dim=1)))


class ReusedRelu(nn.Module):
    """Captum's BasicModelWithReusableModules: one ReLU module called twice (Captum's
    DeepLift raises on it)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin1, self.relu, self.lin2 = nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 2)

    def forward(self, x):
        return self.relu(self.lin2(self.relu(self.lin1(x))))


def small_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3),
        nn.Sigmoid(),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 8),
        nn.Tanh(),
        nn.Linear(8, 3),
    ).eval()


def pooled_cnn(seed: int = 0) -> nn.Module:
    """Max-pooling whose neighbours Captum does not hook (see ADJACENT below)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(36, 3)).eval()


def softmax_mlp(seed: int = 0) -> nn.Module:
    """The layout of Captum's SoftmaxDeepLiftModel, with drawn weights."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(64, 20),
        nn.ReLU(),
        nn.Linear(20, 20),
        nn.ReLU(),
        nn.Linear(20, 3),
        nn.Softmax(dim=1),
    ).eval()


def rng_images(n: int, side: int = 8, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    return (scale * np.random.default_rng(seed).normal(size=(n, 1, side, side))).astype(np.float32)


# -- Captum's hard-coded numbers ------------------------------------------------------------
@pytest.mark.parametrize("inplace", [False, True])
def test_guided_backprop_gives_captums_hard_coded_numbers(inplace):
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    expected = [[0, 1, 1, 1], [1, 3, 3, 2], [1, 3, 3, 2], [1, 2, 2, 1]]
    got = xai_core.explain(OneConv(inplace), x, "guided_backprop", target=0).attributions
    np.testing.assert_allclose(got[0, 0], expected, atol=0.01)


def test_guided_backprop_with_two_inputs_gives_captums_hard_coded_numbers():
    x, x2 = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4), np.ones((1, 1, 4, 4), np.float32)
    expected = [[1, 2, 2, 1], [2, 4, 4, 2], [2, 4, 4, 2], [1, 2, 2, 1]]
    got = xai_core.explain(OneConv(), (x, x2), "guided_backprop", target=0).attributions
    for part in got:
        np.testing.assert_allclose(part[0, 0], expected, atol=0.01)


def test_deeplift_gives_captums_exact_match_numbers():
    x1, x2 = np.array([[1.0]], np.float32), np.array([[2.0]], np.float32)
    e = xai_core.explain(TwoRelus(), (x1, x2), "deeplift", target=0)
    assert e.attributions[0][0, 0] == 2.0 and e.attributions[1][0, 0] == 1.0
    assert e.convergence_delta[0] == 0.0
    plain = xai_core.explain(TwoRelus(), (x1, x2), "deeplift", target=0, multiply_by_inputs=False)
    assert plain.attributions[0][0, 0] == 2.0 and plain.attributions[1][0, 0] == 0.5


def test_deeplift_max_pool_gives_captums_hard_coded_numbers():
    x = np.ones((2, 4), np.float32)
    baselines = np.array([[1, 2, 3, 9], [4, 8, 6, 7]], np.float32)
    e = xai_core.explain(LinearMaxPoolLinear(), x, "deeplift", baselines=baselines, target=0)
    np.testing.assert_allclose(e.attributions, [[0, 0, 0, -8], [0, -7, 0, 0]], atol=1e-4)
    np.testing.assert_allclose(e.convergence_delta, [0, 0], atol=1e-4)


# -- equal to Captum on the same model and inputs ---------------------------------------
GRADIENT_METHODS = {
    "guided_backprop": "GuidedBackprop",
    "deconvolution": "Deconvolution",
    "input_x_gradient": "InputXGradient",
}


@pytest.mark.parametrize("method", GRADIENT_METHODS)
@pytest.mark.parametrize("model", ["small_cnn", "convnet", "resnet"])
def test_relu_methods_equal_captum(method, model):
    net, x = {
        "small_cnn": (small_cnn(), rng_images(4)),
        "convnet": (ConvNet(ones=False).eval(), rng_images(3, side=10)),
        "resnet": (resnet(), rng_images(3, side=16).repeat(3, axis=1)),
    }[model]
    target = np.array([0, 2, 1, 0][: len(x)])
    ours = xai_core.explain(net, x, method, target=target).attributions
    reference = captum(
        getattr(captum_attr, GRADIENT_METHODS[method]), net, x, target=target.tolist()
    )
    assert_close(ours, reference)


@pytest.mark.parametrize(
    "model, x, baselines, compare",
    [
        (small_cnn(), rng_images(4), rng_images(4, seed=1, scale=0.1), True),
        (pooled_cnn(), rng_images(4), rng_images(4, seed=2, scale=0.3), True),
        (softmax_mlp(), rng_images(3), rng_images(3, seed=2, scale=0.3), True),
        # a ReLU module feeding a MaxPool module: Captum's hooks go stale there (below),
        # so only the completeness is compared
        (ConvNet(ones=False).eval(), rng_images(3, 10), rng_images(3, 10, 3, 0.2), False),
        # Captum's own cases: inputs 100x and baselines 20x / 500x a normal draw saturate
        # the softmax (attributions ~1e-9, float noise), so completeness is what is checked
        (ConvNet().eval(), rng_images(2, side=10, scale=100), rng_images(2, 10, 3, 20), False),
        (ConvNet().eval(), rng_images(2, side=10, scale=100), rng_images(2, 10, 4, 500), False),
    ],
    ids=[
        "sigmoid-tanh-cnn",
        "maxpool-cnn",
        "softmax-mlp",
        "captum-convnet",
        "captum-convnet-100x",
        "captum-convnet-500x",
    ],
)
def test_deeplift_equals_captum_and_is_complete(model, x, baselines, compare):
    e = xai_core.explain(model, x, "deeplift", baselines=baselines, target=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference, delta = captum_attr.DeepLift(model).attribute(
            torch.from_numpy(x),
            baselines=torch.from_numpy(baselines),
            target=2,
            return_convergence_delta=True,
        )
    if compare:
        assert_close(e.attributions, reference.detach().numpy())
        np.testing.assert_allclose(e.convergence_delta, delta.detach().numpy(), atol=1e-6)
    assert np.abs(e.convergence_delta).max() < 3e-3  # Captum's own bound for these models


@pytest.mark.parametrize("inplace", [False, True])
def test_deeplift_with_two_inputs_equals_captum(inplace):
    x1 = np.array([[-10.0, 1.0, -5.0], [2.0, 3.0, 4.0]], np.float32)
    x2 = np.array([[3.0, 3.0, 1.0], [2.3, 5.0, 4.0]], np.float32)
    b1, b2 = np.zeros((1, 3), np.float32), np.full((1, 3), 0.0005, np.float32)
    model = ReLULinear(inplace)
    e = xai_core.explain(model, (x1, x2), "deeplift", baselines=(b1, b2), target=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = captum_attr.DeepLift(ReLULinear()).attribute(
            (torch.from_numpy(x1), torch.from_numpy(x2)),
            baselines=(torch.from_numpy(b1), torch.from_numpy(b2)),
            target=0,
        )
    for ours, theirs in zip(e.attributions, reference):
        assert_close(ours, theirs.detach().numpy())
    assert np.abs(e.convergence_delta).max() < 1e-5


# -- where Captum refuses or cannot -----------------------------------------------------------
def reference_gap(model, x, baselines, target):
    with torch.no_grad():
        out = model(torch.from_numpy(x)).double().numpy()
        ref = model(torch.from_numpy(baselines)).double().numpy()
    rows = np.arange(len(x))
    return out[rows, target] - ref[rows, target]


def test_deeplift_explains_a_relu_module_called_twice():
    torch.manual_seed(0)
    model = ReusedRelu().eval()
    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    with pytest.raises(RuntimeError), warnings.catch_warnings():  # Captum refuses it
        warnings.simplefilter("ignore")
        captum_attr.DeepLift(model).attribute(torch.from_numpy(x), target=0)
    e = xai_core.explain(model, x, "deeplift", target=0)
    gap = reference_gap(model, x, np.zeros_like(x), 0)
    np.testing.assert_allclose(e.attributions.sum(axis=1), gap, rtol=1e-5, atol=1e-6)


def test_deeplift_is_complete_on_a_resnet():
    """BatchNorm with real statistics, one in-place ReLU module reused in every block,
    `out += identity`, max-pooling and average pooling: sum = f(x) - f(baseline)."""
    model = resnet()
    x = rng_images(3, side=16).repeat(3, axis=1)
    baselines = 0.1 * rng_images(3, side=16, seed=5).repeat(3, axis=1)
    before = torch_state(model)
    e = xai_core.explain(model, x, "deeplift", baselines=baselines)
    assert torch_state(model) == before
    gap = reference_gap(model, x, baselines, e.target)
    sums = e.attributions.reshape(3, -1).sum(axis=1, dtype=np.float64)
    np.testing.assert_allclose(sums, gap, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(e.convergence_delta, sums - gap, atol=1e-6)


def test_deeplift_is_complete_on_a_vgg_style_stack():
    torch.manual_seed(1)
    blocks = []
    for c_in, c_out in [(3, 8), (8, 16)]:
        blocks += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(inplace=True)]
        blocks += [nn.Conv2d(c_out, c_out, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
    model = nn.Sequential(
        *blocks, nn.Flatten(), nn.Linear(16 * 4 * 4, 32), nn.ReLU(), nn.Linear(32, 5)
    )
    model.eval()
    x = rng_images(2, side=16).repeat(3, axis=1)
    e = xai_core.explain(model, x, "deeplift")
    gap = reference_gap(model, x, np.zeros_like(x), e.target)
    np.testing.assert_allclose(e.attributions.reshape(2, -1).sum(axis=1), gap, rtol=1e-3)


ADJACENT = {
    "relu-maxpool": [
        nn.Conv2d(1, 4, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(36, 3),
    ],
    "maxpool-relu": [
        nn.Conv2d(1, 4, 3),
        nn.MaxPool2d(2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(36, 3),
    ],
    "tanh-sigmoid": [nn.Flatten(), nn.Linear(64, 8), nn.Tanh(), nn.Sigmoid(), nn.Linear(8, 3)],
    "relu-relu": [nn.Flatten(), nn.Linear(64, 8), nn.ReLU(), nn.ReLU(), nn.Linear(8, 3)],
}


@pytest.mark.parametrize("pair", ADJACENT)
def test_captums_stale_gradients_between_adjacent_modules_are_not_copied(pair):
    """Two of Captum's hooked modules directly one after the other (a ReLU feeding a
    MaxPool: every VGG and ResNet stem): on torch 2.13 the first one's backward hook is
    handed the plain gradient instead of the second one's rule, so Captum's completeness
    fails there (README, DeepLift). Ours holds; where no two hooked modules touch, we equal
    Captum (above)."""
    torch.manual_seed(0)
    model = nn.Sequential(*ADJACENT[pair]).eval()
    x, baselines = rng_images(4), rng_images(4, seed=1, scale=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, captum_delta = captum_attr.DeepLift(model).attribute(
            torch.from_numpy(x),
            baselines=torch.from_numpy(baselines),
            target=2,
            return_convergence_delta=True,
        )
    e = xai_core.explain(model, x, "deeplift", baselines=baselines, target=2)
    assert np.abs(captum_delta.numpy()).max() > 1e-3  # if this fails, Captum was fixed
    assert np.abs(e.convergence_delta).max() < 1e-5


# -- the model as it was ------------------------------------------------------------------------
def test_a_rule_that_fails_half_way_leaves_the_model_as_it_was():
    model = resnet()
    before = torch_state(model)
    x = rng_images(2, side=16).repeat(3, axis=1)

    def broken(ops, call):
        raise ValueError("a rule plugin's bug")

    adapter = xai_core.adapt(model)
    with pytest.raises(ValueError, match="plugin's bug"):
        adapter.rule_gradients(x, np.zeros(2, np.int64), {"relu": broken})
    assert torch_state(model) == before
    again = xai_core.explain(model, x, "saliency", abs=False, target=0).attributions
    xt = torch.from_numpy(x).requires_grad_(True)
    (plain,) = torch.autograd.grad(model(xt)[:, 0].sum(), xt)
    assert_close(again, plain.numpy())  # no rule left behind


def test_methods_on_a_backend_without_rules_say_so():
    class Forward(xai_core.ModelAdapter):
        backend = "forward-only"

        def forward(self, inputs):
            return inputs.sum(axis=1, keepdims=True)

    with pytest.raises(xai_core.CapabilityError, match="backward rules"):
        xai_core.explain(Forward(None), np.ones((2, 3), np.float32), "guided_backprop")


def test_deeplift_warns_about_activations_it_has_no_rule_for():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.GELU(), nn.Linear(4, 2)).eval()
    with pytest.warns(UserWarning, match=r"no rule for layers \['1'\]"):
        xai_core.explain(model, np.ones((2, 3), np.float32), "deeplift", target=0)


# -- Guided Grad-CAM and DeepLiftShap ---------------------------------------------------------
@pytest.mark.parametrize("layer", ["conv1", "layer1", "layer2.0.conv2"])
def test_guided_grad_cam_equals_captum_on_a_resnet(layer):
    model = resnet()
    x = rng_images(3, side=16).repeat(3, axis=1)
    ours = xai_core.explain(model, x, "guided_grad_cam", layer=layer, target=1).attributions
    module = dict(model.named_modules())[layer]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = captum_attr.GuidedGradCam(model, module).attribute(
            torch.from_numpy(x), target=1
        )
    assert_close(ours, reference.detach().numpy())


def test_guided_grad_cam_upsamples_by_nearest_neighbours_as_torch():
    from xai_core_explainers.modified_backprop import nearest

    maps = np.random.default_rng(0).normal(size=(2, 3, 5)).astype(np.float32)
    for size in [(7, 11), (6, 10), (3, 5), (13, 4)]:
        expected = torch.nn.functional.interpolate(torch.from_numpy(maps)[:, None], size=size)
        np.testing.assert_array_equal(nearest(maps, size), expected[:, 0].numpy())


@pytest.mark.parametrize("model", ["small_cnn", "softmax_mlp"])
def test_deeplift_shap_equals_captum(model):
    net = small_cnn() if model == "small_cnn" else softmax_mlp()
    x, background = rng_images(3), rng_images(5, seed=9, scale=0.3)
    e = xai_core.explain(net, x, "deeplift_shap", background=background, target=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference, delta = captum_attr.DeepLiftShap(net).attribute(
            torch.from_numpy(x),
            baselines=torch.from_numpy(background),
            target=1,
            return_convergence_delta=True,
        )
    assert_close(e.attributions, reference.detach().numpy())
    pairs = delta.numpy().reshape(3, len(background))  # Captum's: one per (sample, row)
    np.testing.assert_allclose(e.convergence_delta, pairs.mean(axis=1), atol=1e-6)
    f_background = np.mean(
        [reference_gap(net, x, np.repeat(b[None], 3, 0), 1) for b in background], axis=0
    )
    sums = e.attributions.reshape(3, -1).sum(axis=1, dtype=np.float64)
    np.testing.assert_allclose(sums - f_background, e.convergence_delta, atol=1e-6)
    if model == "small_cnn":  # no softmax, whose rule is not exact: complete
        assert np.abs(e.convergence_delta).max() < 1e-5


def test_deeplift_shap_needs_a_background():
    with pytest.raises(xai_core.OptionError, match="background"):
        xai_core.explain(small_cnn(), rng_images(2), "deeplift_shap")


@pytest.mark.parametrize(
    "method, options, calls",
    [
        ("guided_backprop", {}, [4]),
        ("deconvolution", {}, [4]),
        ("deeplift", {}, [8]),  # the samples and their baselines, one pass
        ("guided_grad_cam", {"layer": "0"}, [4, 4]),  # Grad-CAM, then Guided Backprop
    ],
)
def test_the_rule_pass_is_the_first_pass(method, options, calls):
    """No prediction pass of its own: the predicted class comes from the rule pass."""
    model = small_cnn()
    seen = []
    handle = model.register_forward_pre_hook(lambda m, args: seen.append(len(args[0])))
    try:
        e = xai_core.explain(model, rng_images(4), method, **options)
    finally:
        handle.remove()
    assert seen == calls
    with torch.no_grad():
        expected = model(torch.from_numpy(rng_images(4))).numpy()
    np.testing.assert_allclose(e.predictions, expected, rtol=1e-6)
    np.testing.assert_array_equal(e.target, expected.argmax(axis=1))


@pytest.mark.parametrize("method", ["deeplift", "guided_backprop", "deeplift_shap"])
def test_chunked_rule_passes_give_the_same_numbers(method):
    """Calls cut by internal_batch_size keep each sample with its baseline (DeepLift's
    [x; baselines] halves) and give the numbers of one call."""
    model, x = resnet(), rng_images(5, side=16).repeat(3, axis=1)
    options = {"background": rng_images(3, side=16, seed=4).repeat(3, axis=1)}
    options = options if method == "deeplift_shap" else {}
    whole = xai_core.explain(model, x, method, **options)
    cut = xai_core.explain(model, x, method, internal_batch_size=2, **options)
    np.testing.assert_array_equal(cut.target, whole.target)
    assert_close(cut.attributions, whole.attributions, rtol=1e-5)
    if whole.convergence_delta is not None:
        np.testing.assert_allclose(cut.convergence_delta, whole.convergence_delta, atol=1e-6)
