"""The Explanation result: save/load without pickle, and pictures."""

from __future__ import annotations

import numpy as np
import pytest

import xai_core

from models import images, tabular, torch_cnn, torch_mlp


def test_save_load_round_trip_with_the_same_path(tmp_path):
    expl = xai_core.explain(torch_cnn(), images(3), "saliency", target=[1, 2, 3])
    expl.activations = {"conv1": np.ones((3, 8, 8, 8), np.float32), "fc": np.zeros((3, 10))}
    expl.extras = {"cam": np.arange(6.0).reshape(3, 2)}
    expl.convergence_delta = np.array([0.1, -0.2, 0.0])
    expl.options["baselines"] = np.full((1, 1, 8, 8), 0.5)
    path = tmp_path / "saliency"  # no suffix: saved at exactly this path
    expl.save(path)
    assert path.exists() and not (tmp_path / "saliency.npz").exists()
    loaded = xai_core.Explanation.load(path)
    for field in ("inputs", "target", "predictions", "attributions", "convergence_delta"):
        np.testing.assert_array_equal(getattr(loaded, field), getattr(expl, field))
    assert list(loaded.activations) == ["conv1", "fc"]
    np.testing.assert_array_equal(loaded.activations["conv1"], expl.activations["conv1"])
    np.testing.assert_array_equal(loaded.extras["cam"], expl.extras["cam"])
    np.testing.assert_array_equal(loaded.options["baselines"], expl.options["baselines"])
    assert loaded.options["abs"] is True and loaded.method == "saliency"
    assert loaded.backend == "torch" and loaded.versions["torch"] == expl.versions["torch"]
    with np.load(path, allow_pickle=False) as raw:  # loads with pickle disabled
        assert "meta" in raw


def test_loading_something_else_is_a_clear_error(tmp_path):
    bogus = tmp_path / "x.npz"
    bogus.write_bytes(b"not a zip")
    with pytest.raises(xai_core.XaiError, match="not a saved Explanation"):
        xai_core.Explanation.load(bogus)


def test_image_plot_is_a_heatmap_figure():
    from matplotlib.figure import Figure

    fig = xai_core.explain(torch_cnn(), images(4), "saliency").plot()
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 8  # input row and heatmap row for 4 samples
    heat = fig.axes[4].images[-1].get_array()
    assert heat.shape == (8, 8) and 0 <= heat.min() and heat.max() <= 1


def test_tabular_plot_names_the_top_features():
    names = [f"feature_{i}" for i in range(6)]
    expl = xai_core.explain(torch_mlp(), tabular(2), "saliency", abs=False)
    fig = expl.plot(feature_names=names, top_k=3)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    top = np.argsort(-np.abs(expl.attributions[0]))[:3]
    assert sorted(labels) == sorted(names[i] for i in top)


def test_global_plot_ranks_mean_absolute_attribution():
    expl = xai_core.explain(torch_mlp(), tabular(20), "saliency", abs=False)
    fig = expl.plot(kind="global", top_k=2)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    order = np.argsort(np.abs(expl.attributions).mean(0))[-2:]
    assert labels == [f"x{i}" for i in order]
