"""Token models: integer ids stay integers, attributions go to the embedding layer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import LayerGradientXActivation, LayerIntegratedGradients

import xai_core

from real_models import tiny_bert

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def bert():
    return tiny_bert()


@pytest.fixture
def tokens():
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 60, (3, 10))
    mask = np.ones_like(ids)
    mask[1, 7:] = 0  # a padded sentence
    ids[1, 7:] = 0
    return ids, mask


def test_layer_integrated_gradients_on_bert_equals_captum(bert, tokens):
    ids, mask = tokens
    expl = xai_core.explain(
        bert,
        {"input_ids": ids},
        "integrated_gradients",
        layer="bert.embeddings",
        forward_kwargs={"attention_mask": mask},
        target=1,
        baselines=0,  # the pad id
        n_steps=30,
    )

    def forward(input_ids, attention_mask):
        return bert(input_ids, attention_mask=attention_mask).logits

    lig = LayerIntegratedGradients(forward, bert.bert.embeddings)
    ref, delta = lig.attribute(
        torch.from_numpy(ids),
        baselines=torch.zeros_like(torch.from_numpy(ids)),
        additional_forward_args=(torch.from_numpy(mask),),
        target=1,
        n_steps=30,
        return_convergence_delta=True,
    )
    assert expl.layer == "bert.embeddings" and expl.attributions.shape == (3, 10, 16)
    assert expl.inputs["input_ids"].dtype == ids.dtype
    np.testing.assert_allclose(expl.attributions, ref.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(expl.convergence_delta, delta.detach().numpy(), atol=1e-4)


def test_results_do_not_depend_on_internal_batch_size(bert, tokens):
    ids, mask = tokens
    options = dict(layer="bert.embeddings", forward_kwargs={"attention_mask": mask}, n_steps=8)
    whole = xai_core.explain(bert, ids, "integrated_gradients", **options)
    cut = xai_core.explain(bert, ids, "integrated_gradients", internal_batch_size=5, **options)
    np.testing.assert_allclose(cut.attributions, whole.attributions, rtol=1e-5, atol=1e-6)


def test_layer_saliency_equals_captum_layer_gradient_x_activation(bert, tokens):
    ids, mask = tokens
    expl = xai_core.explain(
        bert,
        ids,
        "saliency",
        layer="bert.embeddings",
        abs=False,
        multiply_by_inputs=True,
        forward_kwargs={"attention_mask": mask},
        target=2,
    )

    def forward(input_ids, attention_mask):
        return bert(input_ids, attention_mask=attention_mask).logits

    ref = LayerGradientXActivation(forward, bert.bert.embeddings).attribute(
        torch.from_numpy(ids), additional_forward_args=(torch.from_numpy(mask),), target=2
    )
    np.testing.assert_allclose(expl.attributions, ref.detach().numpy(), rtol=1e-4, atol=1e-6)


def test_gradients_of_token_ids_point_to_the_embedding_layers(bert, tokens):
    ids, mask = tokens
    with pytest.raises(xai_core.InputError, match="bert.embeddings.word_embeddings"):
        xai_core.explain(bert, ids, "integrated_gradients", forward_kwargs={"attention_mask": mask})
    with pytest.raises(xai_core.InputError, match="integrated_gradients with layer="):
        xai_core.explain(
            bert,
            ids,
            "smoothgrad",
            layer="bert.embeddings",
            forward_kwargs={"attention_mask": mask},
        )


def test_forward_only_methods_take_token_ids_as_they_are(bert, tokens):
    ids, mask = tokens
    expl = xai_core.explain(
        bert,
        ids[:1],
        "kernel_shap",
        background=np.zeros((1, 10), ids.dtype),
        forward_kwargs={"attention_mask": mask[:1]},
        n_samples=64,
        seed=0,
    )
    assert expl.attributions.shape == (1, 10) and np.isfinite(expl.attributions).all()
    assert np.abs(expl.convergence_delta).max() < 1e-4


def test_per_token_scores_a_text_plot_and_shap_s_text_plot(bert, tokens, tmp_path):
    import shap

    ids, mask = tokens
    expl = xai_core.explain(
        bert,
        ids,
        "integrated_gradients",
        layer="bert.embeddings",
        forward_kwargs={"attention_mask": mask},
        n_steps=8,
        target=1,
    )
    scores = expl.per_token()
    np.testing.assert_allclose(scores, expl.attributions.sum(-1), rtol=1e-6)
    unit = expl.per_token(normalize=True)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-6)
    words = [[f"w{j}" for j in range(10)] for _ in range(3)]
    fig = expl.plot_text(words[0], sample=0)
    drawn = {t.get_gid(): t for t in fig.axes[0].texts if t.get_gid()}
    assert len(drawn) == 10
    for j in range(10):  # red for positive scores, blue for negative
        red, _, blue, _ = drawn[f"token-{j}"].get_bbox_patch().get_facecolor()
        assert (red > blue) == (scores[0, j] > 0) or abs(scores[0, j]) < 1e-9
    fig.savefig(tmp_path / "text.png")
    explanation = expl.to_shap(tokens=words)
    assert explanation.values.shape == (3, 10)
    np.testing.assert_allclose(
        explanation.values.sum(1) + explanation.base_values,
        expl.predictions[np.arange(3), 1],
        rtol=1e-5,
    )
    html = shap.plots.text(explanation[0], display=False)
    assert "w3" in html
