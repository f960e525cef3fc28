"""`compare`: every method scored by every metric in one call, as a table and a figure,
and `xai compare` on a saved model and a .npy file."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import xai_core
from xai_core.testing.twins import cnn_weights, torch_cnn


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return torch_cnn(cnn_weights(seed=6))


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.random.default_rng(8).normal(size=(4, 1, 10, 10)).astype(np.float32)


METHODS = {"saliency": {}, "integrated_gradients": {"n_steps": 20}, "smoothgrad": {"n_samples": 4}}
METRICS = ["deletion", "insertion", "infidelity", "sensitivity_max", "complexity"]


@pytest.fixture(scope="module")
def comparison(model, x) -> xai_core.Comparison:
    return xai_core.compare(model, x, METHODS, METRICS, seed=0, progress=False)


def test_compare_equals_explaining_and_evaluating_one_by_one(model, x, comparison):
    assert comparison.methods == list(METHODS) and comparison.metrics == METRICS
    for method, own in METHODS.items():
        accepts_seed = "seed" in xai_core.get_explainer(method).options
        e = xai_core.explain(model, x, method, **own, **({"seed": 0} if accepts_seed else {}))
        np.testing.assert_array_equal(comparison.explanations[method].attributions, e.attributions)
        for metric in METRICS:
            accepts = "seed" in xai_core.get_metric(metric).options
            expected = xai_core.evaluate(model, e, metric, **({"seed": 0} if accepts else {}))
            np.testing.assert_array_equal(comparison.scores[method][metric], expected)


def test_the_table_marks_the_best_method_in_the_right_direction(comparison):
    for metric in METRICS:
        means = {m: comparison.mean(m, metric) for m in METHODS}
        better = comparison.higher_is_better[metric]
        expected = (max if better else min)(means, key=means.get)
        assert comparison.best(metric) == expected
    table = comparison.to_markdown()
    lines = table.splitlines()
    assert lines[0].startswith("| method | deletion ↓ | insertion ↑ | infidelity ↓")
    assert len(lines) == 2 + len(METHODS)
    best_deletion = comparison.best("deletion")
    row = next(line for line in lines if line.startswith(f"| {best_deletion} "))
    assert row.split("|")[2].strip().startswith("**")


def test_the_figure_has_a_panel_per_metric_and_per_curve(comparison, tmp_path):
    fig = comparison.plot()
    titled = [ax for ax in fig.axes if ax.get_title()]
    assert len(titled) == len(METRICS) + 2  # deletion and insertion curves
    fig.savefig(tmp_path / "compare.png")
    assert (tmp_path / "compare.png").stat().st_size > 10_000


def test_compare_refuses_an_option_nobody_has(model, x):
    with pytest.raises(xai_core.OptionError, match="no method or metric.*'n_stepz'"):
        xai_core.compare(model, x, ["saliency"], ["deletion"], n_stepz=3)
    with pytest.raises(xai_core.UnknownMetricError):
        xai_core.compare(model, x, ["saliency"], ["delition"])
    with pytest.raises(xai_core.OptionError, match="list of names"):
        xai_core.compare(model, x, [], ["deletion"])


def test_xai_compare_prints_the_table_for_a_saved_model(model, x, tmp_path):
    scripted = torch.jit.trace(model.eval(), torch.from_numpy(x))
    torch.jit.save(scripted, str(tmp_path / "cnn.pt"))
    np.save(tmp_path / "x.npy", x)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "xai_core.cli",
            "compare",
            str(tmp_path / "cnn.pt"),
            str(tmp_path / "x.npy"),
            "--methods",
            "saliency,integrated_gradients",
            "--metrics",
            "deletion,infidelity",
            "--option",
            "seed=0",
            "--plot",
            str(tmp_path / "c.png"),
            "--trust",  # TorchScript is a program: our own file
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    expected = xai_core.compare(
        model, x, ["saliency", "integrated_gradients"], ["deletion", "infidelity"], seed=0
    )
    printed = out.stdout.splitlines()
    row = next(line for line in printed if line.startswith("| integrated_gradients"))
    cells = [c.strip("* ") for c in row.split("|")[2:4]]
    assert float(cells[0]) == pytest.approx(expected.mean("integrated_gradients", "deletion"), 1e-3)
    assert float(cells[1]) == pytest.approx(
        expected.mean("integrated_gradients", "infidelity"), 1e-3
    )
    assert (tmp_path / "c.png").is_file()

    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "xai_core.cli",
            "compare",
            str(tmp_path / "cnn.pt"),
            "nope.npy",
            "--trust",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "nope.npy" in bad.stderr
