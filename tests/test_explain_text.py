"""`explain_text` (issue 23): strings in, token and word scores out, compared with Captum's
LLMAttribution / LLMGradientAttribution on a tiny GPT-2, and with Captum's
FeatureAblation / LayerIntegratedGradients on a tiny BERT classifier; tokenizers are
built here (no download)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xai_core

from reference_checks import assert_close, captum_attribute
from text_fixtures import (
    bert_tokenizer,
    gpt2_tokenizer,
    tiny_bart,
    tiny_bert_classifier,
    tiny_gpt2,
)

captum_attr = pytest.importorskip("captum.attr")

PROMPT, CONTINUATION = "the cat sat on the mat", "and ran to"
REVIEW = "i liked this unbelievable playing film"


@pytest.fixture(scope="module")
def lm():
    tokenizer = gpt2_tokenizer()
    return tiny_gpt2(len(tokenizer)), tokenizer


@pytest.fixture(scope="module")
def classifier():
    tokenizer = bert_tokenizer()
    return tiny_bert_classifier(len(tokenizer)), tokenizer


def captum_text_input(tokenizer, text=PROMPT):
    return captum_attr.TextTokenInput(
        text, tokenizer, baselines=tokenizer.pad_token_id, skip_tokens=[tokenizer.bos_token_id]
    )


@pytest.mark.parametrize("forward_in_tokens", [True, False])
def test_feature_ablation_of_a_continuation_equals_captums_llm_attribution(lm, forward_in_tokens):
    model, tokenizer = lm
    e = xai_core.explain_text(model, tokenizer, PROMPT, "feature_ablation", target=CONTINUATION)
    reference = captum_attr.LLMAttribution(captum_attr.FeatureAblation(model), tokenizer)
    r = reference.attribute(
        captum_text_input(tokenizer), target=CONTINUATION, forward_in_tokens=forward_in_tokens
    )
    assert e.input_tokens == PROMPT.split() and e.output_tokens == CONTINUATION.split()
    assert e.attributions.shape == (3, 6)
    assert_close(e.attributions, r.token_attr.numpy())
    assert_close(e.sequence_attribution, r.seq_attr.numpy())


def test_layer_ig_of_a_continuation_equals_captums_llm_gradient_attribution(lm):
    model, tokenizer = lm
    e = xai_core.explain_text(model, tokenizer, PROMPT, target=CONTINUATION, n_steps=20)
    lig = captum_attr.LayerIntegratedGradients(model, model.transformer.wte)
    r = captum_attr.LLMGradientAttribution(lig, tokenizer).attribute(
        captum_text_input(tokenizer), target=CONTINUATION, n_steps=20
    )
    assert e.explanation.layer == "transformer.wte"  # found from the tokenizer's size
    assert_close(e.attributions, r.token_attr.numpy())
    assert_close(e.sequence_attribution, r.seq_attr.numpy())


def test_the_explained_scores_are_the_continuations_log_probabilities(lm):
    """Closed form: row t's target score is log p(target[t] | prompt, target[:t]), their sum
    the continuation's log-probability; the sequence attribution is the sum of the rows."""
    model, tokenizer = lm
    e = xai_core.explain_text(model, tokenizer, PROMPT, "saliency", target=CONTINUATION)
    ids = tokenizer(PROMPT).input_ids + tokenizer.encode(CONTINUATION, add_special_tokens=False)
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0], -1).numpy()
    start = len(tokenizer(PROMPT).input_ids)
    expected = [logp[start - 1 + t, ids[start + t]] for t in range(3)]
    np.testing.assert_allclose(e.target_scores, expected, rtol=1e-5)
    assert e.sequence_log_prob == pytest.approx(sum(expected), rel=1e-5)
    np.testing.assert_allclose(e.sequence_attribution, e.attributions.sum(0), rtol=1e-12)


def test_no_target_explains_the_models_greedy_continuation(lm):
    model, tokenizer = lm
    e = xai_core.explain_text(model, tokenizer, PROMPT, "saliency", max_new_tokens=5)
    prompt_ids = torch.tensor([tokenizer(PROMPT).input_ids])
    generated = model.generate(prompt_ids, max_new_tokens=5, do_sample=False, pad_token_id=0)
    assert e.target == generated[0, prompt_ids.shape[1] :].tolist()
    assert e.attributions.shape == (5, 6) and len(e.output_tokens) == 5


def bert_reference_ids(tokenizer, text=REVIEW):
    encoding = tokenizer(text)
    ids = np.asarray([encoding.input_ids])
    special = np.isin(ids, tokenizer.all_special_ids)
    return ids, special, encoding.word_ids()


def test_a_classifier_with_words_equals_captums_feature_ablation_over_word_masks(classifier):
    model, tokenizer = classifier
    e = xai_core.explain_text(model, tokenizer, REVIEW, "feature_ablation", features="words")
    ids, special, word_ids = bert_reference_ids(tokenizer)
    words = REVIEW.split()
    mask = np.array([[len(words) if w is None else w for w in word_ids]])
    baselines = np.where(special, ids, tokenizer.pad_token_id)
    forward = lambda x: model(x).logits  # noqa: E731
    predicted = int(forward(torch.from_numpy(ids)).argmax())
    reference = captum_attr.FeatureAblation(forward).attribute(
        torch.from_numpy(ids),
        baselines=torch.from_numpy(baselines),
        feature_mask=torch.from_numpy(mask),
        target=predicted,
    )
    per_word = [reference[0, list(mask[0]).index(w)].item() for w in range(len(words))]
    assert e.input_tokens == words and e.target == [predicted]
    assert e.output_tokens == [model.config.id2label[predicted]]
    assert_close(e.attributions[0], per_word)


def test_a_classifiers_word_scores_are_the_sums_of_captums_layer_ig_token_scores(classifier):
    model, tokenizer = classifier
    e = xai_core.explain_text(
        model, tokenizer, REVIEW, features="words", target="positive", n_steps=16
    )
    ids, special, word_ids = bert_reference_ids(tokenizer)
    baselines = np.where(special, ids, tokenizer.pad_token_id)
    lig = captum_attr.LayerIntegratedGradients(
        lambda x: model(x).logits, model.bert.embeddings.word_embeddings
    )
    per_token = captum_attribute(
        lig, ids, baselines=torch.from_numpy(baselines), target=2, n_steps=16
    ).sum(-1)[0]
    per_word = [sum(per_token[j] for j, w in enumerate(word_ids) if w == k) for k in range(6)]
    assert e.explanation.layer == "bert.embeddings.word_embeddings"
    assert_close(e.attributions[0], per_word)


def test_tokens_leave_the_special_ones_out_and_keep_the_pieces(classifier):
    model, tokenizer = classifier
    e = xai_core.explain_text(model, tokenizer, REVIEW, "saliency")
    assert e.input_tokens == ["i", "liked", "this", "un", "believ", "able", "play", "ing", "film"]
    assert e.attributions.shape == (1, 9)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda m, t: xai_core.explain_text(m, t, "   "), xai_core.InputError, "non-empty"),
        (
            lambda m, t: xai_core.explain_text(m, t, " ".join(["the cat"] * 20), target="and"),
            xai_core.InputError,
            "context of 32",
        ),
        (
            lambda m, t: xai_core.explain_text(m, t, PROMPT, target="and zebras"),
            xai_core.TargetError,
            "cannot produce",
        ),
        (
            lambda m, t: xai_core.explain_text(
                m, t, PROMPT, "grad_cam", target="and", layer="transformer.h.0"
            ),
            xai_core.OptionError,
            "neither",
        ),
        (
            lambda m, t: xai_core.explain_text(m, t, PROMPT, "lime", baseline_token="<zzz>"),
            xai_core.OptionError,
            "not one of the tokenizer",
        ),
        (
            lambda m, t: xai_core.explain_text(m, t, PROMPT, "lime", baselines=0),
            xai_core.OptionError,
            "baseline_token",
        ),
    ],
    ids=[
        "empty",
        "too long",
        "unknown target words",
        "no layer option",
        "bad baseline",
        "own baselines",
    ],
)
def test_bad_text_input_gets_a_clear_error(lm, call, error, match):
    model, tokenizer = lm
    with pytest.raises(error, match=match):
        call(model, tokenizer)


def test_another_models_tokenizer_is_refused_before_any_lookup(lm, classifier):
    model, _ = lm
    _, bigger = classifier  # more tokens than the GPT-2's vocabulary
    with pytest.raises(xai_core.InputError, match="not this model's tokenizer"):
        xai_core.explain_text(model, bigger, "the cat", target="sat")
    small = gpt2_tokenizer()
    big_model = tiny_bert_classifier(len(small) - 5)
    for method in ("integrated_gradients", "feature_ablation"):
        with pytest.raises(xai_core.InputError, match="not this model's tokenizer"):
            xai_core.explain_text(big_model, small, "the cat", method)


def test_the_heatmap_html_and_terminal_views(lm, tmp_path, monkeypatch):
    model, tokenizer = lm
    e = xai_core.explain_text(model, tokenizer, PROMPT, "feature_ablation", target=CONTINUATION)
    fig = e.plot()
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == PROMPT.split()
    assert [t.get_text() for t in ax.get_yticklabels()] == CONTINUATION.split()
    image = ax.images[0]
    low, high = image.get_clim()
    assert low == -high and high == pytest.approx(np.abs(e.attributions).max())
    fig.savefig(tmp_path / "tokens.png")
    page = e.to_html()
    assert "<script" not in page and "http" not in page
    assert all(f">{word}</span>" in page for word in PROMPT.split())
    monkeypatch.setattr("sys.stdout.isatty", lambda: True, raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert "\x1b[48;5;" in str(e)
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b[" not in str(e)


def test_a_list_of_texts_gives_one_result_each(classifier):
    model, tokenizer = classifier
    results = xai_core.explain_text(model, tokenizer, [REVIEW, "the film"], "saliency")
    assert [r.input_tokens[-1] for r in results] == ["film", "film"]
    assert results[1].attributions.shape == (1, 2)


def test_xai_explain_text_on_a_saved_folder_and_pickled_weights_only_with_trust(
    lm, tmp_path, capsys
):
    from xai_core.cli import main

    model, tokenizer = lm
    safe, pickled = tmp_path / "safe", tmp_path / "pickled"
    for folder, safetensors in ((safe, True), (pickled, False)):
        model.save_pretrained(folder, safe_serialization=safetensors)
        tokenizer.save_pretrained(folder)
    plot, page = tmp_path / "tokens.png", tmp_path / "tokens.html"
    argv = [str(safe), PROMPT, "--method", "feature_ablation", "--target", CONTINUATION]
    assert main(["explain-text", *argv, "--plot", str(plot), "--html", str(page)]) == 0
    printed = capsys.readouterr().out
    expected = xai_core.explain_text(
        model, tokenizer, PROMPT, "feature_ablation", target=CONTINUATION
    )
    assert str(expected).splitlines()[1] in printed.replace("\x1b", "")  # the same scores
    assert plot.stat().st_size > 0 and "<span" in page.read_text()
    argv[0] = str(pickled)
    assert main(["explain-text", *argv]) == 2
    assert "safetensors" in capsys.readouterr().err
    assert main(["explain-text", *argv, "--trust"]) == 0


def test_an_encoder_decoder_explains_its_continuation_teacher_forced():
    """BART: row t explains log p(target[t] | prompt, start + target[:t]) (closed form
    from one forward); feature ablation is that minus the same with one prompt token
    padded; layer IG at the encoder's embedding is complete."""
    tokenizer = gpt2_tokenizer()
    model = tiny_bart(len(tokenizer))
    target = tokenizer.encode(CONTINUATION, add_special_tokens=False)
    ids = tokenizer(PROMPT).input_ids
    decoder = torch.tensor([[3, *target[:-1]]])

    def log_probs(prompt_ids):
        with torch.no_grad():
            logits = model(torch.tensor([prompt_ids]), decoder_input_ids=decoder).logits[0]
        return torch.log_softmax(logits, -1).numpy()[np.arange(3), target]

    fa = xai_core.explain_text(model, tokenizer, PROMPT, "feature_ablation", target=CONTINUATION)
    np.testing.assert_allclose(fa.target_scores, log_probs(ids), rtol=1e-5)
    for feature in range(6):  # prompt token `feature` sits at position feature + 1 (BOS)
        padded = list(ids)
        padded[feature + 1] = tokenizer.pad_token_id
        expected = log_probs(ids) - log_probs(padded)
        np.testing.assert_allclose(fa.attributions[:, feature], expected, rtol=1e-4, atol=1e-6)
    ig = xai_core.explain_text(model, tokenizer, PROMPT, target=CONTINUATION, n_steps=64)
    assert ig.explanation.layer == "model.encoder.embed_tokens"
    baseline = [ids[0]] + [tokenizer.pad_token_id] * 6
    gap = log_probs(ids) - log_probs(baseline)
    np.testing.assert_allclose(ig.attributions.sum(1), gap, rtol=1e-3, atol=1e-5)
    own = xai_core.explain_text(model, tokenizer, PROMPT, "saliency", max_new_tokens=4)
    generated = model.generate(
        torch.tensor([ids]), max_new_tokens=4, do_sample=False, num_beams=1, min_length=0
    )
    assert own.target == generated[0, 1:].tolist()


def test_an_encoder_decoder_without_a_decoder_start_token_is_refused():
    tokenizer = gpt2_tokenizer()
    model = tiny_bart(len(tokenizer))
    model.config.decoder_start_token_id = None
    with pytest.raises(xai_core.InputError, match="decoder_start_token_id"):
        xai_core.explain_text(model, tokenizer, PROMPT, target="and")


@pytest.mark.parametrize(
    "values, baselines",
    [(["the cat", "mat"], ["a dog", "park"]), ({"who": "the cat", "where": "mat"}, None)],
    ids=["list, own baselines", "named, empty baselines"],
)
def test_template_segments_equal_captums_text_template_input(lm, values, baselines):
    """Segments switched whole (the switched text is tokenized again: "" changes the
    length) give Captum's LLMAttribution(FeatureAblation) with TextTemplateInput."""
    model, tokenizer = lm
    pattern = "{} sat on the {}" if isinstance(values, list) else "{who} sat on the {where}"
    template = xai_core.TextTemplate(pattern, values, baselines=baselines)
    e = xai_core.explain_text(model, tokenizer, template, "feature_ablation", target=CONTINUATION)
    captum_input = captum_attr.TextTemplateInput(pattern, values=values, baselines=baselines)
    reference = captum_attr.LLMAttribution(captum_attr.FeatureAblation(model), tokenizer)
    r = reference.attribute(captum_input, target=CONTINUATION)
    assert e.input_tokens == (list(values) if isinstance(values, dict) else values)
    assert e.features == "segments" and e.attributions.shape == (3, 2)
    assert_close(e.attributions, r.token_attr.numpy())
    assert_close(e.sequence_attribution, r.seq_attr.numpy())


def test_a_classifiers_template_segments_are_the_logit_drops(classifier):
    model, tokenizer = classifier
    template = xai_core.TextTemplate("i {} this {}", ["liked", "film"], ["hated", "story"])
    e = xai_core.explain_text(model, tokenizer, template, "feature_ablation", target=2)

    def logit(text):
        with torch.no_grad():
            return model(torch.tensor([tokenizer(text).input_ids])).logits[0, 2].item()

    full = logit("i liked this film")
    expected = [full - logit("i hated this film"), full - logit("i liked this story")]
    np.testing.assert_allclose(e.attributions[0], expected, rtol=1e-5, atol=1e-6)
    shap = xai_core.explain_text(model, tokenizer, template, "kernel_shap", target=2, seed=0)
    both = full - logit("i hated this story")  # Shapley values add up to the whole switch
    np.testing.assert_allclose(shap.attributions.sum(), both, rtol=1e-4)


def test_templates_refuse_token_methods_and_bad_segments(lm):
    model, tokenizer = lm
    template = xai_core.TextTemplate("{} sat", ["the cat"])
    with pytest.raises(xai_core.OptionError, match="feature_ablation, kernel_shap"):
        xai_core.explain_text(model, tokenizer, template, "integrated_gradients", target="on")
    with pytest.raises(xai_core.InputError, match="does not take"):
        xai_core.TextTemplate("{} sat on {}", ["the cat"])
    with pytest.raises(xai_core.InputError, match="both be dicts or lists"):
        xai_core.TextTemplate("{a} sat", {"a": "the cat"}, baselines=["a dog"])
