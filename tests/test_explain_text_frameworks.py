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
