"""The ONNX backend: the twins exported from PyTorch explain like the originals."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import xai_core
from xai_core.testing import AdapterConformance
from xai_core.testing.twins import cnn_weights, mlp_weights, twin

from models import images, tabular

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def export(model, example, path) -> onnx.ModelProto:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.eval(),
            (torch.from_numpy(example),),
            str(path),
            dynamo=False,
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
        )
    return xai_core.load_model(path)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx")
    mlp, cnn = twin("torch", "mlp", mlp_weights()), twin("torch", "cnn", cnn_weights())
    return {
        "mlp": (mlp, export(mlp, tabular(2), folder / "mlp.onnx"), tabular(4)),
        "cnn": (cnn, export(cnn, images(2), folder / "cnn.onnx"), images(3)),
    }


CASES = [
    ("occlusion", {"window": (1, 3, 3), "strides": (1, 2, 2)}, "cnn"),
    ("occlusion", {"window": (2,), "baselines": 0.3}, "mlp"),
    ("feature_ablation", {}, "mlp"),
    ("feature_ablation", {"feature_mask": (np.arange(64).reshape(1, 8, 8) // 16)}, "cnn"),
    ("rise", {"n_masks": 30, "cell": 3, "seed": 1}, "cnn"),
    ("kernel_shap", {"background": tabular(5, seed=3), "n_samples": 100, "seed": 2}, "mlp"),
    ("lime", {"background": tabular(5, seed=3), "n_samples": 100, "seed": 2}, "mlp"),
    ("lime", {"n_samples": 50, "seed": 2}, "cnn"),
    ("activations", {"layers": None}, "mlp"),
]


@pytest.mark.parametrize("method, options, kind", CASES)
def test_an_onnx_export_explains_like_the_original(pairs, method, options, kind):
    original, exported, x = pairs[kind]
    before = exported.SerializeToString()
    ours = xai_core.explain(exported, x, method, target=1, **options)
    assert ours.backend == "onnx" and exported.SerializeToString() == before
    np.testing.assert_allclose(
        ours.predictions,
        xai_core.explain(original, x, "saliency", target=1).predictions,
        rtol=1e-5,
        atol=1e-6,
    )
    if method == "activations":
        relu = [n for n in ours.activations if "Relu" in n][0]
        with torch.no_grad():
            hidden = torch.relu(original.fc1(torch.from_numpy(x))).numpy()
        np.testing.assert_allclose(ours.activations[relu], hidden, rtol=1e-5, atol=1e-6)
        return
    reference = xai_core.explain(original, x, method, target=1, **options)
    scale = np.abs(reference.attributions).max()
    np.testing.assert_allclose(ours.attributions, reference.attributions, atol=1e-5 * scale)


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients", "grad_cam"])
def test_gradient_methods_name_the_methods_that_work(pairs, method):
    _, exported, x = pairs["cnn"]
    options = {"layer": "/conv2/Conv_output_0"} if method == "grad_cam" else {}
    with pytest.raises(xai_core.CapabilityError, match="occlusion, feature_ablation, rise"):
        xai_core.explain(exported, x, method, **options)


@pytest.mark.parametrize("method", ["guided_backprop", "deeplift"])
def test_rule_methods_say_onnx_has_no_backward_rules(pairs, method):
    _, exported, x = pairs["cnn"]
    with pytest.raises(xai_core.CapabilityError, match=r"backward rules.*occlusion"):
        xai_core.explain(exported, x, method)


def test_neuron_says_which_backends_record_a_layers_output(pairs):
    _, exported, x = pairs["mlp"]
    with pytest.raises(xai_core.CapabilityError, match="neuron=.*PyTorch, Keras or Paddle"):
        xai_core.explain(exported, x, "feature_ablation", layer="/fc1/Gemm_output_0", neuron=1)


def test_a_session_works_and_summary_lists_the_graph(pairs):
    import onnxruntime as ort

    _, exported, x = pairs["cnn"]
    session = ort.InferenceSession(exported.SerializeToString(), providers=["CPUExecutionProvider"])
    expl = xai_core.explain(session, x, "occlusion", window=(1, 4, 4), strides=(1, 4, 4))
    assert expl.attributions.shape == x.shape
    table = xai_core.summary(exported)
    kinds = [layer.kind for layer in table.layers]
    assert "Conv" in kinds and "Gemm" in kinds
    assert sum(layer.n_params for layer in table.layers) == 1418  # the twin's parameters


def test_xai_summary_reads_an_onnx_file(pairs, tmp_path):
    import subprocess
    import sys

    onnx.save(pairs["mlp"][1], tmp_path / "mlp.onnx")
    result = subprocess.run(
        [sys.executable, "-m", "xai_core.cli", "summary", str(tmp_path / "mlp.onnx")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Gemm" in result.stdout and "(onnx)" in result.stdout


class TestOnnxConformance(AdapterConformance):
    """The checks that apply to a forward-only backend with layer capture."""

    expected_failures = {
        "check_gradients": "an ONNX model has no gradients here",
        "check_layer_gradients": "an ONNX model has no gradients here",
    }

    def make_model(self):
        import tempfile
        from pathlib import Path

        folder = Path(tempfile.mkdtemp())
        return export(twin("torch", "mlp", mlp_weights()), tabular(2), folder / "m.onnx")

    def make_inputs(self):
        return tabular(3)

    @property
    def layer(self):
        return "/relu/Relu_output_0"

    def expected_activation(self, model, inputs, layer):
        torch_model = twin("torch", "mlp", mlp_weights())
        with torch.no_grad():
            return torch.relu(torch_model.fc1(torch.from_numpy(inputs))).numpy()

    def model_state(self, model):
        return model.SerializeToString()


EXPORT_PADDLE = """
import paddle, sys
from xai_core.testing.twins import cnn_weights, twin
paddle.onnx.export(twin("paddle", "cnn", cnn_weights()), sys.argv[1], opset_version=13,
                   input_spec=[paddle.static.InputSpec([None, 1, 8, 8], "float32", "x")])
"""
EXPORT_KERAS = """
import onnx, sys, tensorflow as tf, tf2onnx
from xai_core.testing.twins import cnn_weights, twin
model = twin("tensorflow", "cnn", cnn_weights())
spec = (tf.TensorSpec((None, 8, 8, 1), tf.float32, name="x"),)
proto, _ = tf2onnx.convert.from_function(
    tf.function(lambda t: model(t, training=False)), input_signature=spec, opset=13
)
onnx.save(proto, sys.argv[1])
"""


def test_exports_from_keras_and_paddle_explain_like_the_originals(tmp_path):
    """paddle2onnx works on this stack; tf2onnx's from_keras does not read Keras 3
    models, but its from_function does, on the model's call in a tf.function. Each
    exporter runs in a process of its own: paddle2onnx crashes a process that has
    imported TensorFlow."""
    import subprocess
    import sys

    pytest.importorskip("paddle2onnx")
    pytest.importorskip("tf2onnx")
    for script, path in ((EXPORT_PADDLE, tmp_path / "p"), (EXPORT_KERAS, tmp_path / "k.onnx")):
        result = subprocess.run(
            [sys.executable, "-c", script, str(path)], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr[-3000:]
    x = images(3)
    for framework, exported, xs, window in (
        ("paddle", xai_core.load_model(tmp_path / "p.onnx"), x, (1, 2, 2)),
        (
            "tensorflow",
            xai_core.load_model(tmp_path / "k.onnx"),
            x.transpose(0, 2, 3, 1),
            (2, 2, 1),
        ),
    ):
        pytest.importorskip(framework)
        original = twin(framework, "cnn", cnn_weights())
        ours = xai_core.explain(exported, xs, "occlusion", window=window, target=2)
        reference = xai_core.explain(original, xs, "occlusion", window=window, target=2)
        scale = np.abs(reference.attributions).max()
        np.testing.assert_allclose(ours.attributions, reference.attributions, atol=1e-5 * scale)
