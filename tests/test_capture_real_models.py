"""Activations and Grad-CAM on the layers real models have: tuples, non-batch-first
outputs, 1-D feature maps, several inputs, segmentation maps.

Before, `activations(layers=None)` aborted on the first LSTM, attention or position
embedding; Grad-CAM refused (N, C, T) maps and several inputs; a segmentation model
needed a dummy target to capture activations. References: the layers called by hand,
Captum's LayerGradCam.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import LayerGradCam
from transformers import Wav2Vec2Config, Wav2Vec2ForSequenceClassification

import xai_core

from token_models import gpt2, token_ids


class Recurrent(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(40, 8)
        self.lstm = torch.nn.LSTM(8, 8, batch_first=True)
        self.gru = torch.nn.GRU(8, 8, batch_first=True)
        self.attention = torch.nn.MultiheadAttention(8, 2, batch_first=True)
        self.head = torch.nn.Linear(8, 3)

    def forward(self, ids):
        h, _ = self.lstm(self.embed(ids))
        h, _ = self.gru(h)
        a, _ = self.attention(h, h, h)
        return self.head(a[:, -1])


def test_every_layer_of_a_recurrent_model_is_captured_and_tuples_part_by_part():
    model, ids = Recurrent().eval(), token_ids(3, 7)
    expl = xai_core.explain(model, ids, "activations")  # layers=None: every layer
    with torch.no_grad():
        e = model.embed(torch.from_numpy(ids))
        lstm_out, _ = model.lstm(e)
        gru_out, _ = model.gru(lstm_out)
        attended, weights = model.attention(gru_out, gru_out, gru_out)
    np.testing.assert_allclose(expl.activations["lstm[0]"], lstm_out.numpy(), rtol=1e-5)
    np.testing.assert_allclose(expl.activations["gru[0]"], gru_out.numpy(), rtol=1e-5)
    attention = xai_core.explain(model, ids, "activations", layers=["attention"])  # a block
    np.testing.assert_allclose(attention.activations["attention[0]"], attended.numpy(), rtol=1e-5)
    np.testing.assert_allclose(attention.activations["attention[1]"], weights.numpy(), rtol=1e-5)
    # (layers, N, H) states are not batch first: skipped, and said so
    skipped = " ".join(expl.extras["skipped_layers"])
    assert "lstm[1][0]" in skipped and "gru[1]" in skipped and "not batch first" in skipped
    assert "lstm[1][0]" not in expl.activations
    asked = xai_core.explain(model, ids, "activations", layers=["lstm"])
    assert set(asked.activations) == {"lstm[0]"}  # the states are parts: skipped, said so
    assert len(asked.extras["skipped_layers"]) == 2
    with pytest.raises(xai_core.InputError, match="not one tensor"):  # one tensor needed
        xai_core.explain(model, ids, "integrated_gradients", layer="lstm", target=0)


def test_every_layer_of_gpt2_is_captured_and_its_position_embedding_skipped():
    model, ids = gpt2(), token_ids(3, 7)
    expl = xai_core.explain(model, ids, "activations", output=lambda out: out.logits[:, -1])
    with torch.no_grad():
        wte = model.transformer.wte(torch.from_numpy(ids)).numpy()
    np.testing.assert_allclose(expl.activations["transformer.wte"], wte, rtol=1e-6)
    assert "transformer.h.0.attn[0]" in expl.activations or "transformer.h.0.mlp.c_fc" in (
        expl.activations
    )
    assert any(s.startswith("transformer.wpe:") for s in expl.extras["skipped_layers"])


def wav2vec2():
    torch.manual_seed(0)
    config = Wav2Vec2Config(
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(8, 8),
        conv_kernel=(10, 3),
        conv_stride=(5, 2),
        num_labels=3,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        classifier_proj_size=8,
    )
    return Wav2Vec2ForSequenceClassification(config).eval()


def test_grad_cam_on_wav2vec2_s_1d_feature_map_equals_captum_and_spans_the_waveform():
    model = wav2vec2()
    wave = np.random.default_rng(0).normal(size=(2, 400)).astype(np.float32)
    layer = "wav2vec2.feature_extractor.conv_layers.1.conv"
    expl = xai_core.explain(model, wave, "grad_cam", layer=layer, target=1, relu_attributions=False)
    module = model.wav2vec2.feature_extractor.conv_layers[1].conv
    reference = LayerGradCam(lambda v: model(v).logits, module).attribute(
        torch.from_numpy(wave), target=1
    )[:, 0]
    reference = reference.detach().numpy()
    scale = np.abs(reference).max()
    assert scale > 0
    np.testing.assert_allclose(
        expl.extras["layer_attributions"], reference, rtol=1e-4, atol=1e-5 * scale
    )
    assert expl.attributions.shape == wave.shape  # upsampled over the samples
    # linear upsampling keeps the order of the time steps: the peak stays where it was
    peak = reference.argmax(axis=1) / reference.shape[1]
    assert np.all(np.abs(expl.attributions.argmax(axis=1) / 400 - peak) < 0.05)
    every = xai_core.explain(model, wave, "activations")
    assert any("not batch first" in s for s in every.extras["skipped_layers"])


class TwoBranches(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.image = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.series = torch.nn.Conv1d(2, 4, 3, padding=1)
        self.head = torch.nn.Linear(8, 2)

    def forward(self, image, series):
        a = torch.relu(self.image(image)).mean(dim=(2, 3))
        b = torch.relu(self.series(series)).mean(dim=2)
        return self.head(torch.cat([a, b], dim=1))


def test_grad_cam_on_a_model_of_several_inputs_equals_captum_at_the_layer():
    model = TwoBranches().eval()
    rng = np.random.default_rng(0)
    image = rng.normal(size=(2, 3, 6, 6)).astype(np.float32)
    series = rng.normal(size=(2, 2, 9)).astype(np.float32)
    for layer, module in [("image", model.image), ("series", model.series)]:
        expl = xai_core.explain(model, (image, series), "grad_cam", layer=layer, target=1)
        reference = LayerGradCam(model, module).attribute(
            (torch.from_numpy(image), torch.from_numpy(series)),
            target=1,
            relu_attributions=True,
        )
        assert expl.layer == layer
        np.testing.assert_allclose(
            expl.attributions, reference[:, 0].detach().numpy(), rtol=1e-5, atol=1e-7
        )


def test_a_segmentation_model_s_activations_need_no_target():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 1)
    ).eval()  # (N, 2, H, W): one score per class and pixel
    x = np.random.default_rng(0).normal(size=(2, 3, 8, 8)).astype(np.float32)
    expl = xai_core.explain(model, x, "activations", layers=["0"])
    with torch.no_grad():
        np.testing.assert_allclose(expl.activations["0"], model[0](torch.from_numpy(x)), rtol=1e-6)


def test_messages_name_real_convolutions_and_the_ids_own_dtype():
    from transformers.pytorch_utils import Conv1D  # GPT-2's c_attn: a linear layer

    class Mixed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv1d(2, 4, 3)
            self.c_attn = Conv1D(6, 4)
            self.fc = torch.nn.Linear(6, 2)

        def forward(self, x):
            return self.fc(self.c_attn(self.conv(x).mean(dim=2)))

    x = np.random.default_rng(0).normal(size=(2, 2, 8)).astype(np.float32)
    with pytest.raises(xai_core.OptionError) as info:
        xai_core.explain(Mixed(), x, "grad_cam", layer="fc", target=0)
    assert "such as conv" in str(info.value) and "c_attn" not in str(info.value)
    ids = token_ids(2, 6)
    with pytest.raises(xai_core.InputError) as info:  # ids into a model that wants floats
        xai_core.explain(torch.nn.Linear(6, 2), {"input": ids.astype(np.int32)}, "feature_ablation")
    assert "int32" in str(info.value) and "float64" not in str(info.value)
