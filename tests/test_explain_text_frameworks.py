"""`explain_text` on Keras and Paddle: the same text models built from the same weights
give the PyTorch numbers (issue 23), with one tokenizer (HF's, framework-free)."""

from __future__ import annotations

import numpy as np
import pytest

import xai_core
from xai_core.testing.twins import text_lm_weights, text_weights, twin

from reference_checks import assert_close
from text_fixtures import gpt2_tokenizer

pytest.importorskip("tensorflow")
pytest.importorskip("paddle")

PROMPT, CONTINUATION = "the cat sat on the mat", "and ran to"
METHODS = {
    "feature_ablation": {},
    "integrated_gradients": {"n_steps": 16},
    "saliency": {"abs": False},
    "kernel_shap": {"n_samples": 60, "seed": 3},
}


@pytest.fixture(scope="module")
def tokenizer():
    return gpt2_tokenizer()


@pytest.mark.parametrize("framework", ["tensorflow", "paddle"])
@pytest.mark.parametrize("method", list(METHODS))
def test_a_language_models_continuation_gets_the_pytorch_numbers(tokenizer, framework, method):
    weights = text_lm_weights(len(tokenizer))
    options = METHODS[method]
    reference = xai_core.explain_text(
        twin("torch", "text_lm", weights),
        tokenizer,
        PROMPT,
        method,
        target=CONTINUATION,
        **options,
    )
    e = xai_core.explain_text(
        twin(framework, "text_lm", weights),
        tokenizer,
        PROMPT,
        method,
        target=CONTINUATION,
        **options,
    )
    assert e.explanation.backend == framework
    assert e.input_tokens == reference.input_tokens and e.target == reference.target
    np.testing.assert_allclose(e.target_scores, reference.target_scores, rtol=1e-5)
    assert_close(e.attributions, reference.attributions, rtol=1e-4)
    assert_close(e.sequence_attribution, reference.sequence_attribution, rtol=1e-4)


@pytest.mark.parametrize("framework", ["tensorflow", "paddle"])
@pytest.mark.parametrize("method", ["feature_ablation", "integrated_gradients"])
def test_a_classifiers_words_get_the_pytorch_numbers(tokenizer, framework, method):
    weights = text_weights(vocab=len(tokenizer))
    reference = xai_core.explain_text(
        twin("torch", "text", weights), tokenizer, PROMPT, method, features="words"
    )
    e = xai_core.explain_text(
        twin(framework, "text", weights), tokenizer, PROMPT, method, features="words"
    )
    assert e.target == reference.target and e.explanation.backend == framework
    assert_close(e.attributions, reference.attributions, rtol=1e-4)


@pytest.mark.parametrize("framework", ["tensorflow", "paddle"])
def test_the_greedy_continuation_is_the_same(tokenizer, framework):
    weights = text_lm_weights(len(tokenizer), seed=2)
    prompt = "a dog ran to the park"
    reference = xai_core.explain_text(
        twin("torch", "text_lm", weights), tokenizer, prompt, "saliency", max_new_tokens=5
    )
    e = xai_core.explain_text(
        twin(framework, "text_lm", weights), tokenizer, prompt, "saliency", max_new_tokens=5
    )
    assert len(set(reference.target)) > 1  # not one token repeated: a real check
    assert e.target == reference.target


def keras_inputs(ids):
    return {"token_ids": ids, "padding_mask": np.ones_like(ids, bool)}


def test_a_keras_hub_bert_classifier_from_a_config_works_end_to_end():
    """keras-hub's dict inputs (token_ids, padding_mask, segment_ids) are filled; the word
    scores of layer IG add up to f(x) - f(baseline) and feature ablation's are the logit
    drops of padding each word, both computed here from the model."""
    keras, keras_hub = pytest.importorskip("keras"), pytest.importorskip("keras_hub")
    from text_fixtures import bert_tokenizer

    tokenizer = bert_tokenizer()
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(tokenizer),
        num_layers=1,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=32,
        name="text_bert",  # not the default: other tests name theirs by Keras's default
    )
    model = keras_hub.models.BertTextClassifier(backbone, num_classes=3, preprocessor=None)
    text = "i liked this unbelievable playing film"
    encoding = tokenizer(text)
    ids = np.asarray([encoding.input_ids])

    def logit(rows):
        inputs = {**keras_inputs(rows), "segment_ids": np.zeros_like(rows)}
        return model(inputs).numpy()[:, 2].astype(np.float64)

    ig = xai_core.explain_text(model, tokenizer, text, features="words", target=2, n_steps=64)
    assert ig.explanation.layer == "text_bert/token_embedding"
    padded = np.where(np.isin(ids, tokenizer.all_special_ids), ids, tokenizer.pad_token_id)
    np.testing.assert_allclose(ig.attributions.sum(), logit(ids) - logit(padded), rtol=1e-3)
    fa = xai_core.explain_text(
        model, tokenizer, text, "feature_ablation", features="words", target=2
    )
    words = encoding.word_ids()
    for word in range(6):
        ablated = ids.copy()
        ablated[0, [j for j, w in enumerate(words) if w == word]] = tokenizer.pad_token_id
        drop = logit(ids) - logit(ablated)
        np.testing.assert_allclose(fa.attributions[0, word], drop[0], rtol=1e-4, atol=1e-7)


def test_a_keras_hub_gpt2_from_a_config_explains_a_continuation_by_perturbation(tokenizer):
    """Its token embedding also makes the logits (tied, called twice): gradient methods
    are refused with the way out; feature ablation is the log-probability drop."""
    keras, keras_hub = pytest.importorskip("keras"), pytest.importorskip("keras_hub")
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=len(tokenizer),
        num_layers=1,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        max_sequence_length=32,
        name="text_gpt2",
    )
    model = keras_hub.models.GPT2CausalLM(backbone, preprocessor=None)
    e = xai_core.explain_text(model, tokenizer, PROMPT, "feature_ablation", target=CONTINUATION)
    full = np.asarray([tokenizer(f"{PROMPT} {CONTINUATION}").input_ids])

    def log_probs(rows):
        logits = model(keras_inputs(rows)).numpy()[0].astype(np.float64)
        logits -= logits.max(-1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        return np.array([logp[6 + t, full[0, 7 + t]] for t in range(3)])

    np.testing.assert_allclose(e.target_scores, log_probs(full), rtol=1e-5)
    ablated = full.copy()
    ablated[0, 2] = tokenizer.pad_token_id  # "cat"
    np.testing.assert_allclose(
        e.attributions[:, 1], log_probs(full) - log_probs(ablated), rtol=1e-3, atol=1e-6
    )
    with pytest.raises(xai_core.XaiError, match="perturbation method"):
        xai_core.explain_text(model, tokenizer, PROMPT, target=CONTINUATION)
