"""Perturbing token ids: a token is kept or replaced by the baseline token, never scaled.

Before, RISE fed `(ids * soft_mask).astype(int64)` (ids that are neither the input's
nor the pad id) and tabular LIME cast Gaussian samples to ids (a raw IndexError on
torch). Every test records the ids the model's embedding layer actually received.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xai_core

from token_models import PAD, VOCAB, distilbert, gpt2, token_ids


class Recorder:
    """The ids an embedding layer receives, call by call."""

    def __init__(self, embedding: torch.nn.Module) -> None:
        self.seen: list[np.ndarray] = []
        self.handle = embedding.register_forward_pre_hook(
            lambda _m, args: self.seen.append(args[0].detach().numpy().copy())
        )

    def ids(self) -> np.ndarray:
        self.handle.remove()
        return np.concatenate([s.reshape(-1, s.shape[-1]) for s in self.seen])


def assert_only_real_tokens(seen: np.ndarray, ids: np.ndarray, baseline: int) -> None:
    """Every id at every position is one of the batch's ids there, or the baseline token."""
    allowed = [set(ids[:, j]) | {baseline} for j in range(ids.shape[1])]
    invented = [(j, v) for j in range(ids.shape[1]) for v in set(seen[:, j]) - allowed[j]]
    assert not invented, f"ids the inputs never had (position, id): {invented[:5]}"
    assert (seen == baseline).any() and (seen != baseline).any()  # both kept and replaced


class Lstm(torch.nn.Module):
    def __init__(self, cell=torch.nn.LSTM):
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(VOCAB, 8)
        self.rnn = cell(8, 8, batch_first=True)
        self.head = torch.nn.Linear(8, 3)

    def forward(self, ids):
        out, _ = self.rnn(self.embed(ids))
        return self.head(out[:, -1])


class Bag(torch.nn.Module):
    """Linear in which tokens are present: f = W sum_j E[id_j] + c."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.EmbeddingBag(VOCAB, 6, mode="sum")
        self.head = torch.nn.Linear(6, 3)

    def forward(self, ids):
        return self.head(self.embed(ids))


MODELS = {
    "lstm": (lambda: Lstm(), lambda m: m.embed, None),
    "gru": (lambda: Lstm(torch.nn.GRU), lambda m: m.embed, None),
    "embedding_bag": (Bag, lambda m: m.embed, None),
    "gpt2": (gpt2, lambda m: m.transformer.wte, lambda out: out.logits[:, -1]),
    "distilbert": (distilbert, lambda m: m.distilbert.embeddings.word_embeddings, None),
}


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("method", ["rise", "lime"])
def test_perturbation_methods_feed_only_real_tokens(name, method):
    build, embedding, output = MODELS[name]
    model, ids = build(), token_ids()
    options = {"n_masks": 40, "cell": 3} if method == "rise" else {"n_samples": 40}
    recorder = Recorder(embedding(model))
    expl = xai_core.explain(
        model, ids, method, target=1, output=output, baselines=PAD, seed=0, **options
    )
    assert_only_real_tokens(recorder.ids(), ids, PAD)
    assert expl.attributions.shape == ids.shape and np.isfinite(expl.attributions).all()
    assert np.abs(expl.attributions).max() > 0


def test_lime_on_a_bag_of_tokens_recovers_each_token_s_effect():
    """f is linear in which tokens are present, so LIME's local linear model is exact:
    each token's weight is f's change when that token becomes the baseline token."""
    model, ids = Bag().eval(), token_ids(2, 6)
    expl = xai_core.explain(model, ids, "lime", target=2, n_samples=600, baselines=PAD, seed=0)
    with torch.no_grad():
        table = model.embed.weight @ model.head.weight[2]  # each token's effect on class 2
    effect = (table[ids] - table[PAD]).numpy()
    # lime's Ridge(alpha=1) shrinks the exact coefficients by ~2%
    np.testing.assert_allclose(
        expl.attributions, effect, rtol=0.04, atol=0.005 * np.abs(effect).max()
    )


def test_rise_on_token_ids_ranks_the_one_token_that_matters_first():
    class OneToken(torch.nn.Module):
        def forward(self, ids):
            hit = (ids == 7).any(dim=1, keepdim=True).float()
            return torch.cat([hit, 1 - hit], dim=1)

    ids = token_ids(2, 8, seed=3)
    ids[ids == 7] = 8
    ids[:, 5] = 7
    expl = xai_core.explain(OneToken(), ids, "rise", target=0, n_masks=300, cell=4, seed=0)
    assert (expl.attributions.argmax(axis=1) == 5).all()
    np.testing.assert_allclose(expl.attributions[:, 5], 1.0)  # kept: the output is always 1


# -- scoring text explanations: tokens replaced by the baseline token -----------------
def layer_ig_on_distilbert(ids, mask):
    model = distilbert()
    expl = xai_core.explain(
        model,
        {"input_ids": ids},
        "integrated_gradients",
        layer="distilbert.embeddings.word_embeddings",
        forward_kwargs={"attention_mask": mask},
        target=1,
        baselines=PAD,
        n_steps=16,
    )
    return model, expl


def logits(model, ids, mask):
    with torch.no_grad():
        out = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
    return out.logits[:, 1].numpy().astype(np.float64)


def test_deletion_and_insertion_score_embedding_attributions_token_by_token():
    ids = token_ids(2, 6)
    mask = np.ones_like(ids)
    mask[1, 5:] = 0
    model, expl = layer_ig_on_distilbert(ids, mask)
    per_token = expl.attributions.sum(axis=-1)  # (N, T): the sum over the embedding
    deletion = xai_core.evaluate(model, expl, "deletion", baseline=PAD)
    insertion = xai_core.evaluate(model, expl, "insertion", baseline=PAD)
    for i in range(2):
        order = np.argsort(-per_token[i], kind="stable")
        removed, inserted = [], []
        for k in range(7):
            gone = np.isin(np.arange(6), order[:k])
            rows = np.where(gone, PAD, ids[i])[None], np.where(gone, ids[i], PAD)[None]
            removed.append(logits(model, rows[0], mask[i : i + 1])[0])
            inserted.append(logits(model, rows[1], mask[i : i + 1])[0])
        np.testing.assert_allclose(deletion[i], np.trapezoid(removed, dx=1 / 6), rtol=1e-5)
        np.testing.assert_allclose(insertion[i], np.trapezoid(inserted, dx=1 / 6), rtol=1e-5)


def test_completeness_of_layer_ig_on_tokens_equals_captum_s_convergence_delta():
    from captum.attr import LayerIntegratedGradients

    ids = token_ids(2, 6)
    mask = np.ones_like(ids)
    model, expl = layer_ig_on_distilbert(ids, mask)
    got = xai_core.evaluate(model, expl, "completeness", relative=False)

    def forward(input_ids, attention_mask):
        return model(input_ids=input_ids, attention_mask=attention_mask).logits

    _, delta = LayerIntegratedGradients(
        forward, model.distilbert.embeddings.word_embeddings
    ).attribute(
        torch.from_numpy(ids),
        baselines=torch.zeros_like(torch.from_numpy(ids)),
        target=1,
        additional_forward_args=(torch.from_numpy(mask),),
        n_steps=16,
        return_convergence_delta=True,
    )
    np.testing.assert_allclose(got, np.abs(delta.numpy()), rtol=1e-3, atol=1e-6)


def test_faithfulness_correlation_of_tokens_follows_its_documented_subsets():
    ids = token_ids(2, 6)
    mask = np.ones_like(ids)
    model, expl = layer_ig_on_distilbert(ids, mask)
    got = xai_core.evaluate(
        model, expl, "faithfulness_correlation", subset_size=2, n_runs=8, seed=3, baseline=PAD
    )
    per_token = expl.attributions.sum(axis=-1)
    draws = np.random.RandomState(xai_core.explainer.legacy_seed(3))
    subsets = [[draws.choice(6, 2, replace=False) for _ in range(2)] for _ in range(8)]
    f_x = logits(model, ids, mask)
    for i in range(2):
        sums, drops = [], []
        for run in subsets:
            row = ids[i].copy()
            row[run[i]] = PAD
            sums.append(per_token[i, run[i]].sum())
            drops.append(f_x[i] - logits(model, row[None], mask[i : i + 1])[0])
        np.testing.assert_allclose(got[i], np.corrcoef(sums, drops)[0, 1], rtol=1e-6)


@pytest.mark.parametrize("method", ["rise", "lime"])
def test_keras_token_models_get_only_real_tokens_too(method, monkeypatch):
    import keras

    from xai_core_backends.tensorflow.adapter import KerasAdapter

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((9,), dtype="int32"),
            keras.layers.Embedding(VOCAB, 8),
            keras.layers.LSTM(8),
            keras.layers.Dense(3),
        ]
    )
    ids = token_ids().astype(np.int32)
    seen, forward = [], KerasAdapter.forward

    def recording(self, inputs):
        seen.append(np.array(inputs))
        return forward(self, inputs)

    monkeypatch.setattr(KerasAdapter, "forward", recording)
    options = {"n_masks": 40, "cell": 3} if method == "rise" else {"n_samples": 40}
    expl = xai_core.explain(model, ids, method, target=1, baselines=PAD, seed=0, **options)
    assert all(s.dtype == np.int32 for s in seen)
    assert_only_real_tokens(np.concatenate(seen), ids, PAD)
    assert np.abs(expl.attributions).max() > 0
