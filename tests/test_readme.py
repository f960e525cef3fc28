"""The README's code must run: its examples are executed here so they never rot."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

import xai_core

README = (Path(__file__).parent.parent / "README.md").read_text()


def python_blocks(after_heading: str) -> list[str]:
    section = README.split(after_heading, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(python_blocks("## Example")[0], namespace)
    assert (tmp_path / "saliency.npz").exists()
    assert namespace["same"].attributions.shape == (5, 4)
    np.testing.assert_array_equal(namespace["same"].target, [2] * 5)


def test_explainer_plugin_example_runs():
    block = next(b for b in python_blocks("## Writing a plugin") if "GradientNorm" in b)
    namespace: dict = {"np": np, "xai_core": xai_core}
    exec(block, namespace)
    module = type("Plugin", (), {"xai_explainers": staticmethod(namespace["xai_explainers"])})
    xai_core.register(module, name="readme")
    try:
        from models import tabular, torch_linear

        model, x = torch_linear(), tabular(3, d=5)
        expl = xai_core.explain(model, x, "gradient_norm", target=1)
        w = model[0].weight.detach().numpy()
        np.testing.assert_allclose(expl.attributions, np.tile(w[1] ** 2, (3, 1)), rtol=1e-6)
    finally:
        xai_core.unregister(module)


def test_framework_examples_run_in_a_fresh_process(tmp_path):
    import subprocess
    import sys

    first, *others, _functions, _sklearn = python_blocks("## Example")
    assert [b.split("\n", 1)[0].split()[1] for b in others] == ["paddle", "keras"]
    for block in others:
        script = first + block + "\nassert expl.attributions.shape == (5, 4)\n"
        result = subprocess.run(
            [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr[-3000:]


def test_function_model_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first, *_, functions, _sklearn = python_blocks("## Example")
    namespace: dict = {}
    exec(first + functions, namespace)
    aggregate = namespace["expl"]
    assert aggregate.attributions.shape == (5, 4)
    np.testing.assert_array_equal(aggregate.attributions, aggregate.attributions[:1].repeat(5, 0))


def test_sklearn_example_runs():
    from sklearn.datasets import load_breast_cancer

    *_, sklearn_block = python_blocks("## Example")
    x, y = load_breast_cancer(return_X_y=True)
    namespace = {"xai_core": xai_core, "x_train": x[:400], "y_train": y[:400], "x_test": x[400:403]}
    exec(sklearn_block, namespace)
    assert namespace["expl"].backend == "sklearn"
    assert namespace["expl"].attributions.shape == (3, 30)


def test_real_models_examples_run(tmp_path, monkeypatch):
    import warnings

    import pytest
    import torch

    pytest.importorskip("transformers")
    pytest.importorskip("onnxruntime")
    two_inputs, text, onnx_block = python_blocks("## Real models")
    namespace: dict = {}
    exec(two_inputs, namespace)
    attr_a, attr_b = namespace["attr_a"], namespace["attr_b"]
    assert attr_a.shape == (5, 4) and attr_b.shape == (5, 3)
    delta = namespace["expl"].convergence_delta
    assert np.abs(delta).max() < 1e-2 * np.abs(namespace["expl"].predictions).max()
    exec(text, namespace)
    assert namespace["scores"].shape == (2, 7)
    assert namespace["expl"].layer == "bert.embeddings"
    assert len([t for t in namespace["fig"].axes[0].texts if t.get_gid()]) == 7
    from models import images, torch_cnn

    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            torch_cnn().eval(),
            (torch.zeros(1, 1, 8, 8),),
            "digits_cnn.onnx",
            dynamo=False,
            dynamic_axes={"input": {0: "n"}},
            input_names=["input"],
        )
    namespace["x"] = images(2)
    exec(onnx_block, namespace)
    assert namespace["expl"].backend == "onnx" and namespace["expl"].attributions.shape == (
        2,
        1,
        8,
        8,
    )


def test_text_example_runs():
    import pytest

    pytest.importorskip("transformers")
    namespace: dict = {}
    exec(python_blocks("## Text and language models")[0], namespace)
    expl = namespace["expl"]
    assert expl.attributions.shape == (3, 6) and expl.output_tokens == ["and", "ran", "to"]
    assert expl.input_tokens == "the cat sat on the mat".split()
    np.testing.assert_allclose(expl.sequence_attribution, expl.attributions.sum(0))
    assert "<span" in namespace["page"] and namespace["fig"].axes[0].images
    assert namespace["ablated"].attributions.shape == (8, 3)  # its own 8-token continuation


def test_which_method_example_runs(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict = {}
    exec(python_blocks("## Which method?")[0], namespace)
    table = namespace["table"]
    assert table.methods == ["saliency", "integrated_gradients", "occlusion"]
    assert namespace["scores"].shape == (8,)
    assert namespace["result"].curves.shape[0] == 8


def test_metric_plugin_example_runs():
    import numpy as np

    import xai_core
    from xai_core.testing.twins import mlp_weights, torch_mlp

    block = next(b for b in python_blocks("## Writing a plugin") if "TopShare" in b)
    namespace: dict = {}
    exec(block, namespace)
    plugin = type("Plugin", (), {"xai_metrics": staticmethod(namespace["xai_metrics"])})
    model = torch_mlp(mlp_weights())
    x = np.random.default_rng(0).normal(size=(3, 6)).astype(np.float32)
    e = xai_core.explain(model, x, "saliency")
    # the outsider distribution installs the same metric as top_share: rename this copy
    namespace["TopShare"].name = "top_share_readme"
    xai_core.register(plugin, name="readme_metric")
    try:
        scores = xai_core.evaluate(model, e, "top_share_readme")
    finally:
        xai_core.unregister(plugin)
    np.testing.assert_allclose(scores, e.attributions.max(1) / e.attributions.sum(1))


def test_explaining_a_dataset_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(python_blocks("## Explaining a dataset")[0], namespace)
    results = namespace["results"]
    assert results.complete and len(results) == 1000
    assert namespace["first"].attributions.shape == (10, 1, 12, 12)
    assert (tmp_path / "val-smoothgrad.zarr").is_dir()
