"""The call that was explained is the call that is scored: forward_kwargs and output=.

`evaluate` used to forget the explanation's `output=` (GPT-2 deletion then scored
another output) and `forward_kwargs`; gradient_shap refused batch-first kwargs
(attention masks) because its background rows belonged to no sample; Keras dict
inputs lost keyword arguments that name model inputs (keras-hub's padding_mask).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import torch
from captum.attr import LayerIntegratedGradients, Saliency

import xai_core

from token_models import distilbert, gpt2, token_ids


def last_token(out):
    return out.logits[:, -1]


def test_evaluate_scores_the_output_and_kwargs_the_explanation_was_made_with():
    model, ids = gpt2(), token_ids(2, 8)
    expl = xai_core.explain(model, ids, "occlusion", output=last_token, target=5, window=(1,))
    same = xai_core.evaluate(model, expl, "deletion", output=last_token, baseline=0)
    np.testing.assert_array_equal(xai_core.evaluate(model, expl, "deletion", baseline=0), same)
    # the deletion curve by hand: tokens removed (set to id 0) in order of attribution
    for i in range(2):
        order = np.argsort(-expl.attributions[i], kind="stable")
        curve, row = [], ids[i].copy()
        for k in range(len(order) + 1):
            with torch.no_grad():
                curve.append(float(last_token(model(torch.from_numpy(row[None])))[0, 5]))
            if k < len(order):
                row[order[k]] = 0
        assert abs(same[i] - np.trapezoid(curve, dx=1 / len(order))) < 1e-4 * max(1, abs(same[i]))
    with pytest.raises(xai_core.InputError, match="320 outputs per sample, but 40"):
        xai_core.evaluate(model, expl, "deletion", output=None, baseline=0)


def test_gradient_shap_with_an_attention_mask_follows_the_documented_draws():
    """DistilBERT explained on inputs_embeds with a per-sample attention mask: each draw's
    reference row runs with its sample's mask (Captum passes additional_forward_args the
    same way)."""
    model = distilbert()
    rng = np.random.default_rng(0)
    embeds = rng.normal(size=(2, 6, 16)).astype(np.float32)
    mask = np.ones((2, 6), np.int64)
    mask[1, 4:] = 0
    background = np.zeros((1, 6, 16), np.float32)
    expl = xai_core.explain(
        model,
        {"inputs_embeds": embeds},
        "gradient_shap",
        background={"inputs_embeds": background},
        forward_kwargs={"attention_mask": mask},
        target=1,
        n_samples=5,
        seed=4,
    )

    def forward(inputs_embeds, attention_mask):
        return model(inputs_embeds=inputs_embeds, attention_mask=attention_mask).logits

    draws = np.random.default_rng(4)
    draws.integers(0, 1, (5, 2))
    alphas = draws.uniform(0, 1, (5, 2)).astype(np.float32)
    total = np.zeros(embeds.shape)
    for s in range(5):
        point = background[0] + alphas[s].reshape(2, 1, 1) * (embeds - background[0])
        g = Saliency(forward).attribute(
            torch.from_numpy(point),
            target=1,
            abs=False,
            additional_forward_args=(torch.from_numpy(mask),),
        )
        total += g.numpy() * (embeds - background[0])
    np.testing.assert_allclose(expl.attributions["inputs_embeds"], total / 5, rtol=1e-4, atol=1e-6)
    with torch.no_grad():
        f_x = forward(torch.from_numpy(embeds), torch.from_numpy(mask))[:, 1].numpy()
        f_b = forward(torch.zeros(2, 6, 16), torch.from_numpy(mask))[:, 1].numpy()
    delta = (total / 5).reshape(2, -1).sum(1) - (f_x - f_b)
    np.testing.assert_allclose(expl.convergence_delta, delta, atol=1e-4)


def test_keras_hub_bert_takes_its_padding_mask_as_a_forward_kwarg():
    keras_hub = pytest.importorskip("keras_hub")
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=40,
        num_layers=1,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=12,
    )
    model = keras_hub.models.BertTextClassifier(backbone, num_classes=3, preprocessor=None)
    ids = token_ids(2, 10)
    mask = np.ones_like(ids)
    mask[1, 7:] = 0
    extra = {"padding_mask": mask, "segment_ids": np.zeros_like(ids)}
    expl = xai_core.explain(
        model,
        {"token_ids": ids},
        "integrated_gradients",
        layer=f"{backbone.name}/token_embedding",  # (Keras numbers repeated names)
        forward_kwargs=extra,
        target=1,
        n_steps=64,
    )
    full = model({"token_ids": ids, **extra}).numpy()
    assert np.allclose(expl.predictions, full, atol=1e-6)  # the mask reached the model
    # completeness: the embedding IG sums to f(x) - f(baseline ids 0), with the same mask
    base = model({"token_ids": np.zeros_like(ids), **extra}).numpy()
    np.testing.assert_allclose(
        expl.attributions.reshape(2, -1).sum(1), full[:, 1] - base[:, 1], atol=2e-3
    )


def test_layer_integrated_gradients_on_distilbert_with_its_mask_equals_captum():
    model, ids = distilbert(), token_ids(3, 7)
    mask = np.ones_like(ids)
    mask[2, 5:] = 0
    expl = xai_core.explain(
        model,
        {"input_ids": ids},
        "integrated_gradients",
        layer="distilbert.embeddings.word_embeddings",
        forward_kwargs={"attention_mask": mask},
        target=0,
        n_steps=20,
    )

    def forward(input_ids, attention_mask):
        return model(input_ids=input_ids, attention_mask=attention_mask).logits

    reference = LayerIntegratedGradients(forward, model.distilbert.embeddings.word_embeddings)
    want = reference.attribute(
        torch.from_numpy(ids),
        baselines=torch.zeros_like(torch.from_numpy(ids)),
        target=0,
        additional_forward_args=(torch.from_numpy(mask),),
        n_steps=20,
    )
    np.testing.assert_allclose(expl.attributions, want.detach().numpy(), rtol=1e-4, atol=1e-6)
