"""Metrics on a model with two inputs: the packed row per sample is what they perturb,
and the scores equal those of the same network taking one concatenated input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xai_core
from xai_core.testing.twins import twin, two_input_weights


class Concatenated(torch.nn.Module):
    """The two-input twin with its inputs given as one row [a | b]."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x[:, :4], x[:, 4:])


@pytest.mark.parametrize(
    "metric, options",
    [
        ("deletion", {"steps": 7}),
        ("infidelity", {"seed": 0}),
        ("sensitivity_max", {"seed": 1, "n_perturb_samples": 3}),
        ("faithfulness_correlation", {"seed": 2, "n_runs": 10, "subset_size": 3}),
        ("model_randomization", {"seed": 3}),
        ("completeness", {}),
    ],
)
def test_two_inputs_score_as_one_concatenated_input(metric, options):
    model = twin("torch", "two_input", two_input_weights())
    rng = np.random.default_rng(4)
    a = rng.normal(size=(5, 4)).astype(np.float32)
    b = rng.normal(size=(5, 3)).astype(np.float32)
    two = xai_core.explain(model, (a, b), "integrated_gradients")
    flat = Concatenated(model)
    one = xai_core.explain(flat, np.concatenate([a, b], axis=1), "integrated_gradients")
    np.testing.assert_allclose(
        np.concatenate(two.attributions, axis=1), one.attributions, rtol=1e-5, atol=1e-7
    )
    ours = xai_core.evaluate(model, two, metric, **options)
    expected = xai_core.evaluate(flat, one, metric, **options)
    # completeness is a small difference of float32 sums taken in another order
    np.testing.assert_allclose(
        ours, expected, rtol=1e-4, atol=1e-5 if metric == "completeness" else 1e-7
    )


class Scaled(torch.nn.Module):
    """A linear model whose output each sample scales by its own keyword argument."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(6, 3)
        torch.nn.init.normal_(self.fc.weight, generator=torch.Generator().manual_seed(0))

    def forward(self, x, scale):
        return torch.tanh(self.fc(x)) * scale[:, None]


NOISE = np.random.default_rng(8).normal(0, 0.1, (5, 4, 6)).astype(np.float32)


@pytest.mark.parametrize(
    "metric, options",
    [
        ("sensitivity_max", {"perturbations": NOISE}),
        ("infidelity", {"perturbations": NOISE}),
        ("deletion", {"steps": 6}),
    ],
)
def test_batch_first_forward_kwargs_follow_their_samples(metric, options):
    """Each sample scored with the others equals it scored alone with its own scale."""
    model = Scaled()
    x = np.random.default_rng(7).normal(size=(4, 6)).astype(np.float32)
    scale = np.array([1.0, 2.0, -1.0, 0.5], np.float32)
    e = xai_core.explain(model, x, "saliency", abs=False, forward_kwargs={"scale": scale})
    together = xai_core.evaluate(model, e, metric, forward_kwargs={"scale": scale}, **options)
    for i in range(4):
        one = xai_core.explain(
            model, x[i : i + 1], "saliency", abs=False, forward_kwargs={"scale": scale[i : i + 1]}
        )
        own = {k: (v[:, i : i + 1] if k == "perturbations" else v) for k, v in options.items()}
        alone = xai_core.evaluate(
            model, one, metric, forward_kwargs={"scale": scale[i : i + 1]}, **own
        )
        np.testing.assert_allclose(alone[0], together[i], rtol=1e-5, err_msg=f"sample {i}")
