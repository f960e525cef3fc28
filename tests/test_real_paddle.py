"""Real architectures, Paddle: `paddle.vision.models` as they ship, in-place ops included."""

from __future__ import annotations

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

import xai_core  # noqa: E402

from conftest import paddle_state  # noqa: E402
from explainers_helpers import check_output_pick_and_chunking  # noqa: E402


def images(n=2, size=32, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n, 3, size, size)).astype(np.float32)


class ConvThenInPlaceRelu(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, 4, 3, padding=1)
        self.fc = paddle.nn.Linear(4, 2)

    def forward(self, x):
        out = paddle.nn.functional.relu_(self.conv(x))
        return self.fc(out.mean(axis=[2, 3]))


def test_a_capture_is_not_changed_by_a_later_relu_():
    paddle.seed(0)
    model, x = ConvThenInPlaceRelu(), images(2, 8)
    expl = xai_core.explain(model, x, "activations", layers=["conv"])
    with paddle.no_grad():
        expected = model.conv(paddle.to_tensor(x)).numpy()
    assert (expected < 0).any()
    np.testing.assert_allclose(expl.activations["conv"], expected, rtol=1e-6)


@pytest.fixture(scope="module")
def resnet18():
    from paddle.vision.models import resnet18

    paddle.seed(0)
    model = resnet18(pretrained=False, num_classes=5)
    model.eval()
    return model


def test_resnet18_block_outputs_before_out_plus_identity(resnet18):
    m, x = resnet18, images()
    names = ["layer1.0.bn1", "layer1.0.bn2", "layer1.0"]
    expl = xai_core.explain(m, x, "activations", layers=names)
    with paddle.no_grad():  # recomputed without in-place operations
        t = paddle.to_tensor(x)
        stem = m.maxpool(paddle.nn.functional.relu(m.bn1(m.conv1(t))))
        block = m.layer1[0]
        bn1 = block.bn1(block.conv1(stem))
        bn2 = block.bn2(block.conv2(paddle.nn.functional.relu(bn1)))
        expected = {
            "layer1.0.bn1": bn1,
            "layer1.0.bn2": bn2,
            "layer1.0": paddle.nn.functional.relu(bn2 + stem),
        }
    for name in names:
        np.testing.assert_allclose(
            expl.activations[name], expected[name].numpy(), rtol=1e-5, atol=1e-5, err_msg=name
        )


def test_grad_cam_and_integrated_gradients_on_resnet18_leave_it_as_it_was(resnet18):
    x = images()
    before = paddle_state(resnet18)
    cam = xai_core.explain(resnet18, x, "grad_cam", layer="layer4", target=1)
    ig = xai_core.explain(resnet18, x, "integrated_gradients", n_steps=8, target=1)
    assert paddle_state(resnet18) == before
    assert cam.attributions.shape == x.shape and np.isfinite(cam.attributions).all()
    assert np.abs(ig.convergence_delta).max() < 0.5 * np.abs(ig.attributions.sum((1, 2, 3))).max()


class WithUnusedLayers(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, 4, 3, padding=1)
        self.spare = paddle.nn.Conv2D(3, 4, 3, padding=1)
        self.never = paddle.nn.Conv2D(3, 4, 3, padding=1)
        self.fc = paddle.nn.Linear(4, 2)

    def forward(self, x):
        self.spare(x)
        return self.fc(paddle.nn.functional.relu(self.conv(x)).mean(axis=[2, 3]))


def test_unused_layers_refuse_grad_cam_and_never_run_layers_named():
    paddle.seed(0)
    model, x = WithUnusedLayers(), images(2, 8)
    before = paddle_state(model)
    # a layer whose output the prediction never uses: an error, never zeros that say nothing
    with pytest.raises(xai_core.GradientNotReachedError, match="does not reach layer 'spare'"):
        xai_core.explain(model, x, "grad_cam", layer="spare", target=0)
    for method, options in [("grad_cam", {"layer": "never"}), ("activations", {"layers": "never"})]:
        with pytest.raises(xai_core.OptionError, match="'never' did not run"):
            xai_core.explain(model, x, method, **options)
    assert paddle_state(model) == before


def test_lime_on_a_64_pixel_image_with_its_default_segmentation(resnet18):
    x = images(1, 64)
    expl = xai_core.explain(resnet18, x, "lime", n_samples=60, seed=0)
    assert expl.attributions.shape == x.shape and np.isfinite(expl.attributions).all()
    assert len(np.unique(expl.attributions[0, 0])) > 4  # quickshift found several segments


class MaskedSegmenter(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.conv = paddle.nn.Conv2D(2, 3, 3, padding=1)

    def forward(self, x, mask=None):
        y = self.conv(x * mask)
        return {"logits": y, "aux": 2.0 * y}


def test_forward_kwargs_dict_outputs_and_pixel_targets_on_paddle():
    paddle.seed(0)
    model = MaskedSegmenter()
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(3, 2, 8, 8)).astype(np.float32)
    mask = (rng.uniform(size=(3, 1, 8, 8)) > 0.3).astype(np.float32)
    kwargs = {"mask": mask}
    expl = xai_core.explain(
        model, x, "saliency", abs=False, target=(1, 2, 3), forward_kwargs=kwargs
    )
    xt = paddle.to_tensor(x, stop_gradient=False)
    y = model(xt, mask=paddle.to_tensor(mask))["logits"][:, 1, 2, 3].sum()
    (g,) = paddle.grad(y, xt)
    np.testing.assert_allclose(expl.attributions, g.numpy(), rtol=1e-5, atol=1e-7)
    check_output_pick_and_chunking(model, x, expl, (1, 2, 3), (0, 1, 1), kwargs)
