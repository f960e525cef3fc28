"""explain_dataset on the architectures people run it on: a ResNet-18 in training mode
(BatchNorm, in-place ReLU, `out += identity`) and a BERT on token ids with a batch-first
attention mask; metrics on the BERT's layer attributions too."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xai_core

from real_models import resnet18, tiny_bert

pytest.importorskip("zarr")
BATCH = 4


def test_a_resnet18_store_equals_explaining_each_batch_and_leaves_the_model(tmp_path):
    model = resnet18(seed=2)
    model.train()  # the user's mode; BatchNorm statistics must not move
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = np.random.default_rng(0).uniform(size=(10, 3, 32, 32)).astype(np.float32)
    stored = xai_core.explain_dataset(
        model,
        x,
        "integrated_gradients",
        out=tmp_path / "s",
        batch_size=BATCH,
        n_steps=8,
        progress=False,
    )
    for start in range(0, len(x), BATCH):
        e = xai_core.explain(model, x[start : start + BATCH], "integrated_gradients", n_steps=8)
        np.testing.assert_allclose(
            stored.attributions[start : start + BATCH], e.attributions, rtol=1e-5, atol=1e-7
        )
        np.testing.assert_allclose(
            stored.convergence_delta[start : start + BATCH],
            e.convergence_delta,
            rtol=1e-4,
            atol=1e-6,
        )
    assert model.training and all(m.training for m in model.modules())
    for name, value in model.state_dict().items():
        assert torch.equal(value, state[name]), name


@pytest.fixture(scope="module")
def bert():
    pytest.importorskip("transformers")
    return tiny_bert()


def _tokens(n=9, length=10):
    rng = np.random.default_rng(1)
    ids = rng.integers(1, 60, (n, length))
    mask = np.ones_like(ids)
    for i in range(0, n, 2):  # every other sentence padded
        ids[i, 6:] = 0
        mask[i, 6:] = 0
    return ids, mask


def test_bert_token_ids_with_a_per_row_attention_mask(bert, tmp_path):
    ids, mask = _tokens()
    options = {"layer": "bert.embeddings", "baselines": 0, "n_steps": 8}
    stored = xai_core.explain_dataset(
        bert,
        {"input_ids": ids},
        "integrated_gradients",
        out=tmp_path / "s",
        forward_kwargs={"attention_mask": mask},
        batch_size=BATCH,
        progress=False,
        **options,
    )
    for start in range(0, len(ids), BATCH):
        rows = slice(start, start + BATCH)
        e = xai_core.explain(
            bert,
            {"input_ids": ids[rows]},
            "integrated_gradients",
            forward_kwargs={"attention_mask": mask[rows]},
            **options,
        )
        np.testing.assert_allclose(stored.attributions[rows], e.attributions, rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(stored.target[rows], e.target)
    # the mask reached the right rows: without it, padded sentences explain differently
    unmasked = xai_core.explain(bert, {"input_ids": ids[:BATCH]}, "integrated_gradients", **options)
    assert not np.allclose(unmasked.attributions[0], stored.attributions[0], atol=1e-6)


def test_metrics_on_bert_layer_attributions_with_the_mask(bert):
    ids, mask = _tokens(n=4)
    kwargs = {"attention_mask": mask}
    e = xai_core.explain(
        bert,
        {"input_ids": ids},
        "integrated_gradients",
        layer="bert.embeddings",
        forward_kwargs=kwargs,
        baselines=0,
        n_steps=8,
    )
    for metric in ("sparseness", "complexity"):
        assert np.isfinite(xai_core.evaluate(bert, e, metric, forward_kwargs=kwargs)).all()
    before = {k: v.clone() for k, v in bert.state_dict().items()}
    cascade = xai_core.evaluate(
        bert,
        e,
        "model_randomization",
        forward_kwargs=kwargs,
        seed=0,
        details=True,
        layers=["bert.encoder.layer.1.output.dense", "classifier"],
    )
    assert cascade.curve_labels == ["classifier", "bert.encoder.layer.1.output.dense"]
    assert np.isfinite(cascade.curves).all() and np.all(cascade.curves <= 1 + 1e-9)
    assert all(torch.equal(v, before[k]) for k, v in bert.state_dict().items())
    # token ids: deletion replaces tokens by the baseline id, scoring per-token sums
    assert np.isfinite(xai_core.evaluate(bert, e, "deletion", forward_kwargs=kwargs)).all()


def test_a_resnet18_store_is_not_resumed_after_its_batchnorm_statistics_changed(tmp_path):
    """The weights' hash covers buffers: the same parameters with other BatchNorm running
    statistics (one more training step's worth) explain differently, so they are another
    model; an unchanged copy resumes (and computes nothing)."""
    import copy

    import torch

    model = resnet18(seed=2).eval()
    x = np.random.default_rng(0).uniform(size=(6, 3, 32, 32)).astype(np.float32)

    def run(m):
        return xai_core.explain_dataset(
            m, x, "saliency", out=tmp_path / "s", batch_size=BATCH, progress=False
        )

    run(model)
    assert run(copy.deepcopy(model)).complete
    moved = copy.deepcopy(model)
    with torch.no_grad():
        moved.bn1.running_mean += 0.01
    with pytest.raises(xai_core.XaiError, match="different model"):
        run(moved)
