"""Nested Keras layers are named by path; list options are not mistaken for inputs.

Before, two towers' `proj` layers were one name (activations silently returned one of
them, `layers=None` listed one), and with several inputs every list option
(`layers=[...]`, `categorical_features=[...]`) was packed as if it were a baseline:
a raw ValueError.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest
import torch
from lime.lime_tabular import LimeTabularExplainer

import xai_core
from xai_core.explainer import legacy_seed


def two_towers():
    keras.utils.set_random_seed(0)

    def tower(name):
        return keras.Sequential(
            [keras.layers.Dense(4, name="proj"), keras.layers.Dense(3, name="out")], name=name
        )

    a, b = keras.Input((5,)), keras.Input((5,))
    towers = tower("tower_a"), tower("tower_b")
    out = keras.layers.Add(name="add")([towers[0](a), towers[1](b)])
    return keras.Model([a, b], out), towers


def test_keras_layers_of_two_towers_are_named_by_path_and_a_short_name_is_refused():
    model, (tower_a, tower_b) = two_towers()
    rng = np.random.default_rng(0)
    xa, xb = rng.normal(size=(2, 5)).astype("float32"), rng.normal(size=(2, 5)).astype("float32")
    names = [layer.name for layer in xai_core.adapt(model).layers()]
    assert names == ["tower_a/proj", "tower_a/out", "tower_b/proj", "tower_b/out", "add"]
    expl = xai_core.explain(model, [xa, xb], "activations")
    assert list(expl.activations) == names
    np.testing.assert_allclose(expl.activations["tower_a/proj"], tower_a.layers[0](xa), rtol=1e-6)
    np.testing.assert_allclose(expl.activations["tower_b/proj"], tower_b.layers[0](xb), rtol=1e-6)
    for method, options in [("activations", {"layers": "proj"}), ("grad_cam", {"layer": "proj"})]:
        with pytest.raises(xai_core.AmbiguousLayerError, match="tower_a/proj, tower_b/proj"):
            xai_core.explain(model, [xa, xb], method, target=0, **options)
    # a short name that is unique still works, and means that layer
    single = xai_core.explain(model, [xa, xb], "activations", layers=["add"])
    np.testing.assert_allclose(single.activations["add"], model([xa, xb]), rtol=1e-6)


def test_lime_categorical_features_on_several_inputs_equal_lime_on_the_packed_rows():
    torch.manual_seed(0)

    class TwoInputs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(5, 3)

        def forward(self, a, b):
            return self.fc(torch.cat([a, b], dim=1))

    model = TwoInputs().eval()
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2, 3)).astype(np.float32)
    b = rng.integers(0, 3, (2, 2)).astype(np.float32)  # b[:, 1] is a category
    background = (rng.normal(size=(20, 3)).astype(np.float32), rng.integers(0, 3, (20, 2)))
    background = (background[0], background[1].astype(np.float32))
    expl = xai_core.explain(
        model,
        (a, b),
        "lime",
        background=background,
        categorical_features=[4],
        target=1,
        n_samples=300,
        seed=5,
    )
    packed = np.concatenate([np.concatenate(background, axis=1)]).astype(np.float64)
    reference = LimeTabularExplainer(
        packed,
        mode="classification",
        categorical_features=[4],
        discretize_continuous=False,
        random_state=legacy_seed(5),
    )

    def predict(rows):
        rows = torch.from_numpy(rows.astype(np.float32))
        with torch.no_grad():
            return model(rows[:, :3], rows[:, 3:]).numpy().astype(np.float64)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(2):
            row = np.concatenate([a[i], b[i]]).astype(np.float64)
            want = dict(
                reference.explain_instance(
                    row, predict, labels=(1,), num_features=5, num_samples=300
                ).as_map()[1]
            )
            got = np.concatenate([expl.attributions[0][i], expl.attributions[1][i]])
            np.testing.assert_allclose(got, [want[j] for j in range(5)], rtol=1e-6, atol=1e-9)
