"""This round's layer options and batch-valued models on real architectures, against
Captum on the same model: a ResNet (BatchNorm, in-place ReLU, `out += identity`) for a
layer's input and for two layers on the parallel paths of a residual block, a DistilBERT
block (token ids, an attention mask, a block returning a 1-tuple) for one tensor of a
tuple output, and a ResNet summed over the batch for Captum's aggregation mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import LayerIntegratedGradients, Occlusion

import xai_core

from real_models import resnet
from token_models import PAD, distilbert, token_ids

X = np.random.default_rng(3).uniform(size=(2, 3, 16, 16)).astype(np.float32)


@pytest.fixture(scope="module")
def net():
    return resnet(seed=2)


def test_layer_input_inside_a_residual_block_equals_captum(net):
    block = net.layer2[0]  # its conv2 reads the in-place ReLU's output
    ours = xai_core.explain(
        net, X, "integrated_gradients", layer="layer2.0.conv2:input", target=1, n_steps=16
    )
    theirs = LayerIntegratedGradients(net, block.conv2).attribute(
        torch.from_numpy(X), target=1, n_steps=16, attribute_to_layer_input=True
    )
    np.testing.assert_allclose(ours.attributions, theirs.detach().numpy(), rtol=1e-4, atol=1e-6)


def _out_of_place_add(self, x):
    """BasicBlock.forward with `out = out + identity`: Captum's replaced layer outputs are
    leaves, which the block's in-place `out += identity` may not modify (Captum raises);
    xai_core passes a copy on, so the block runs as written."""
    identity = x if self.downsample is None else self.downsample(x)
    out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
    return self.relu(out + identity)


def test_two_layers_on_the_parallel_paths_of_a_residual_block_equal_captum(net, monkeypatch):
    block = net.layer2[0]  # bn2 and the downsample branch meet in `out += identity`
    ours = xai_core.explain(
        net,
        X,
        "integrated_gradients",
        layer=["layer2.0.bn2", "layer2.0.downsample"],
        target=1,
        n_steps=16,
    )
    monkeypatch.setattr(type(block), "forward", _out_of_place_add)
    theirs = LayerIntegratedGradients(net, [block.bn2, block.downsample]).attribute(
        torch.from_numpy(X), target=1, n_steps=16
    )
    monkeypatch.undo()
    for name, want in zip(["layer2.0.bn2", "layer2.0.downsample"], theirs):
        np.testing.assert_allclose(
            ours.attributions[name], want.detach().numpy(), rtol=1e-4, atol=1e-6
        )
    assert np.abs(ours.convergence_delta).max() < 0.05 * np.abs(ours.predictions).max()


def test_one_tensor_of_a_transformer_block_s_tuple_equals_captum_on_the_block():
    model = distilbert()
    ids, mask = token_ids(2, 7), np.ones((2, 7), np.int64)
    ours = xai_core.explain(
        model,
        {"input_ids": ids},
        "integrated_gradients",
        layer="distilbert.transformer.layer.0[0]",
        forward_kwargs={"attention_mask": mask},
        baselines=PAD,
        target=1,
        n_steps=16,
    )

    def forward(input_ids, attention_mask):
        return model(input_ids=input_ids, attention_mask=attention_mask).logits

    theirs = LayerIntegratedGradients(forward, model.distilbert.transformer.layer[0]).attribute(
        torch.from_numpy(ids),
        baselines=torch.full_like(torch.from_numpy(ids), PAD),
        target=1,
        additional_forward_args=(torch.from_numpy(mask),),
        n_steps=16,
    )
    theirs = theirs[0] if isinstance(theirs, tuple) else theirs  # Captum unwraps a 1-tuple
    np.testing.assert_allclose(ours.attributions, theirs.detach().numpy(), rtol=1e-4, atol=1e-6)


def test_a_resnet_summed_over_the_batch_is_occluded_as_captum_s_aggregation_mode(net):
    def batch_logit(x):
        return net(x)[:, 1].sum()

    ours = xai_core.explain(
        xai_core.FunctionModel(batch_logit, "torch"), X, "occlusion", window=(3, 8, 8), strides=8
    )
    theirs = Occlusion(batch_logit).attribute(
        torch.from_numpy(X), sliding_window_shapes=(3, 8, 8), strides=8
    )
    assert ours.options["aggregate_mode"] is True
    np.testing.assert_allclose(
        ours.attributions, np.repeat(theirs.detach().numpy(), 2, 0), rtol=1e-4, atol=1e-5
    )
