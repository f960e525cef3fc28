"""Text in, explanation out: `explain_text(model, tokenizer, text, method)`.

What a user of a text model would otherwise do by hand around `explain`: tokenize (with
the special tokens the model expects, which are never features), find the input
embedding, build the baseline (pad tokens where the features are), choose what is
explained (a class's logit, or the log-probability of each token of a continuation,
teacher-forced), and map the scores back to tokens or words. Everything below goes
through `explain` and the adapter contract, so a text model of any framework whose
backend has `token_log_probs` (language models) is explained the same way.

Conventions (Captum's `LLMAttribution` / `LLMGradientAttribution` where it has one):

- A language model's row t explains log p(target[t] | prompt, target[:t]); the whole
  sequence (prompt and continuation) runs once per row, and row t reads the logits at
  position len(prompt) - 1 + t (a causal model sees nothing after it there, so this
  equals Captum's one-call-per-token forward). `sequence_attribution` explains the
  log-probability of the whole continuation: the sum of the rows (exact for gradient
  methods and feature ablation, which are linear in what they explain).
- Gradient methods attribute through the input embedding (`layer=`, found from the
  tokenizer's vocabulary size when not given); a token's score is the sum over the
  embedding axis; with no `baselines`, the baseline is the pad token at every feature
  position (special tokens and the continuation kept).
- Perturbation methods switch a feature's tokens to `baseline_token` one for one (the
  length never changes); special tokens and the continuation are never switched.
- `features="words"`: tokens merged by the tokenizer's word ids; a gradient method's
  word score is the sum of its tokens' scores, a perturbation method switches the word.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InputError, OptionError, TargetError, XaiError
from .function_model import FunctionModel
from .inputs import ModelInputs
from .registry import REGISTRY
from .text_explanation import TextExplanation
from .text_template import TextTemplate, template_text

#: perturbation methods and the option that takes the baseline ids
_PERTURBATION = {"feature_ablation": "baselines", "kernel_shap": "background", "lime": "background"}
#: greedy continuation length when a language model's target is not given (Captum: 25)
DEFAULT_NEW_TOKENS = 8


@dataclass
class _Prompt:
    ids: list[int]  # what reaches the model: special tokens included
    features: list[list[int]]  # the positions of each feature, in order
    names: list[str]  # each feature's text


@dataclass(frozen=True)
class _Request:
    """One `explain_text` call, as the steps below need it."""

    adapter: Any
    model: Any
    tokenizer: Any
    prompt: _Prompt
    method: str
    target: Any
    baseline_token: str | None
    layer: str | None
    max_new_tokens: int
    features: str
    options: dict[str, Any]
    start: int | None  # an encoder-decoder's decoder start token
    style: _InputStyle


@dataclass(frozen=True)
class _InputStyle:
    """How the model takes token ids: positionally (HF, most modules), or as one entry of
    a dict of named inputs (Keras functional models such as keras-hub's: `token_ids`
    with a `padding_mask`, and `segment_ids` for BERT-style ones), the other entries
    filled for an unpadded text (mask ones, segments zeros)."""

    name: str | None = None
    filled: tuple[str, ...] = ()

    @classmethod
    def of(cls, model: Any) -> _InputStyle:
        try:
            declared = getattr(model, "input", None)
        except (AttributeError, ValueError):  # a Keras model not built from inputs
            declared = None
        if not isinstance(declared, Mapping):
            return cls()
        names = list(declared)
        name = next((n for n in ("token_ids", "input_ids") if n in names), names[0])
        others = tuple(n for n in names if n != name)
        unknown = [n for n in others if n not in _FILLED]
        if unknown:
            raise InputError(
                f"the model takes the inputs {names}; explain_text fills only "
                f"{', '.join(_FILLED)} besides the token ids, not {', '.join(unknown)}."
            )
        return cls(name, others)

    def inputs(self, ids: np.ndarray) -> Any:
        return ids if self.name is None else {self.name: ids}

    def kwargs(self, ids: np.ndarray, decoder: Any = None) -> dict[str, Any] | None:
        extra = {n: _FILLED[n](np.shape(ids)) for n in self.filled}
        if decoder is not None:
            extra["decoder_input_ids"] = np.asarray(decoder)
        return extra or None

    def call(self, ids: np.ndarray, decoder: Any = None) -> Any:
        """What the adapter's forward and capture take for these ids."""
        extra = self.kwargs(ids, decoder)
        if self.name is None and not extra:
            return ids
        if self.name is None:
            return ModelInputs((ids,), extra, (0,))
        return ModelInputs((), {self.name: ids, **(extra or {})}, (self.name,))

    def attributions(self, value: Any) -> Any:
        return value[self.name] if self.name is not None and isinstance(value, Mapping) else value

    def per_input(self, value: np.ndarray) -> Any:
        return value if self.name is None else {self.name: value}


#: inputs besides the token ids that explain_text fills, for one unpadded text per row
_FILLED = {
    "padding_mask": lambda shape: np.ones(shape, bool),
    "attention_mask": lambda shape: np.ones(shape, np.int64),
    "segment_ids": lambda shape: np.zeros(shape, np.int64),
    "token_type_ids": lambda shape: np.zeros(shape, np.int64),
}


def explain_text(
    model: Any,
    tokenizer: Any,
    text: str | Sequence[str] | TextTemplate,
    method: str = "integrated_gradients",
    *,
    target: Any = None,
    features: str = "tokens",
    baseline_token: str | None = None,
    layer: str | None = None,
    max_new_tokens: int = DEFAULT_NEW_TOKENS,
    **options: Any,
) -> TextExplanation | list[TextExplanation]:
    """Explain what `model` does with `text` (a string; a list gives a list of results).

    A classifier (outputs (batch, classes)) explains `target`, a class index or label name
    (None: the predicted class). A causal language model (outputs (batch, seq, vocab))
    explains the continuation `target` (a string, tokenized without special tokens), or,
    for None, its own greedy continuation of `max_new_tokens` tokens (generated once, by
    argmax, stopping at the tokenizer's end-of-sequence token). `method` is any gradient
    method with a `layer=` option (through the input embedding) or one of
    feature_ablation, kernel_shap, lime (switching tokens to `baseline_token`, default
    the pad token); `options` go to the method.
    """
    from .api import adapt

    if isinstance(text, (list, tuple)):
        return [
            explain_text(
                model,
                tokenizer,
                one,
                method,
                target=target,
                features=features,
                baseline_token=baseline_token,
                layer=layer,
                max_new_tokens=max_new_tokens,
                **options,
            )
            for one in text
        ]
    if isinstance(text, TextTemplate):
        return _explain_template(model, tokenizer, text, method, target, max_new_tokens, options)
    if not isinstance(text, str) or not text.strip():
        raise InputError(
            f"text must be a non-empty string (or a list of them), got {text!r}: there is "
            "nothing to explain in it."
        )
    if features not in ("tokens", "words"):
        raise OptionError(f"features must be 'tokens' or 'words', got {features!r}.")
    adapter = adapt(model)
    prompt = _tokenized(tokenizer, text, features)
    _check_context(model, tokenizer, len(prompt.ids))
    _check_ids(adapter, tokenizer, prompt.ids)
    start = _decoder_start(model)
    style = _InputStyle.of(model)
    logits = _forward(
        adapter, np.asarray([prompt.ids]), None if start is None else [[start]], style
    )
    request = _Request(
        adapter,
        model,
        tokenizer,
        prompt,
        method,
        target,
        baseline_token,
        layer,
        max_new_tokens,
        features,
        options,
        start,
        style,
    )
    if logits.ndim == 3:
        return _explain_continuation(request, logits)
    if logits.ndim != 2:
        raise InputError(
            f"the model returned logits of shape {logits.shape}; explain_text explains "
            "classifiers (batch, classes) and language models (batch, sequence, vocabulary)."
        )
    return _explain_class(request, logits[0])


# -- what is explained ----------------------------------------------------------------------
def _explain_class(request: _Request, logits: np.ndarray) -> TextExplanation:
    r = request
    label = _class_index(r.model, r.target, logits)
    # found (and the tokenizer's size checked against it) for every method: a perturbation
    # method on another model's tokenizer would run, and mean nothing
    layer = r.layer or _input_embedding(r.adapter, r.tokenizer, r.prompt.ids, None, r.style)
    ids = np.asarray([r.prompt.ids])
    scores, explanation = _attribute(r, ids, np.asarray([label]), None, None, layer)
    names = getattr(getattr(r.model, "config", None), "id2label", None) or {}
    return TextExplanation(
        text=prompt_text(r.prompt),
        method=r.method,
        features=r.features,
        input_tokens=r.prompt.names,
        output_tokens=[str(names.get(label, label))],
        attributions=scores,
        sequence_attribution=scores[0],
        target=[label],
        target_scores=np.asarray([float(explanation.predictions[0, label])]),
        explanation=explanation,
    )


def _explain_continuation(request: _Request, logits: np.ndarray) -> TextExplanation:
    r = request
    adapter, model, tokenizer, prompt, start = r.adapter, r.model, r.tokenizer, r.prompt, r.start
    vocabulary = logits.shape[-1]
    continuation = _continuation(
        adapter, model, tokenizer, prompt.ids, r.target, r.max_new_tokens, start, r.style
    )
    _check_vocabulary(tokenizer, vocabulary)
    _check_context(
        model, tokenizer, len(prompt.ids) + (0 if start is not None else len(continuation))
    )
    _check_context(model, tokenizer, len(continuation) + 1)  # (the decoder's)
    steps = len(continuation)
    tokens = np.asarray(continuation)
    if start is None:  # a causal model reads the continuation after the prompt
        positions = len(prompt.ids) - 1 + np.arange(steps)
        ids = np.tile(np.asarray(prompt.ids + continuation), (steps, 1))
        decoder = None
    else:  # an encoder-decoder: the decoder starts at its start token, teacher-forced
        positions = np.arange(steps)
        ids = np.tile(np.asarray(prompt.ids), (steps, 1))
        decoder = np.tile(np.asarray([start, *continuation[:-1]]), (steps, 1))

    def log_probs(raw: Any) -> Any:  # (rows, steps): each step's target log-probability
        return adapter.token_log_probs(_logits_of(raw), positions, tokens)

    scores, explanation = _attribute(r, ids, np.arange(steps), log_probs, decoder, r.layer)
    step_scores = np.diagonal(explanation.predictions).astype(np.float64)
    return TextExplanation(
        text=prompt_text(prompt),
        method=r.method,
        features=r.features,
        input_tokens=prompt.names,
        output_tokens=[tokenizer.decode([t]) for t in continuation],
        attributions=scores,
        sequence_attribution=scores.sum(axis=0),
        target=continuation,
        target_scores=step_scores,
        explanation=explanation,
    )


def _explain_template(
    model: Any,
    tokenizer: Any,
    template: TextTemplate,
    method: str,
    target: Any,
    max_new_tokens: int,
    options: dict[str, Any],
) -> TextExplanation:
    """Segments as features (Captum's `TextTemplateInput`): the core explains a row of
    ones, one per segment, whose zeros switch segments to their baselines; every
    distinct switched text is tokenized again and run once (texts of one length in one
    batch), so its length may change."""
    from .api import adapt, explain

    if method not in _TEMPLATE_METHODS:
        raise OptionError(
            f"a TextTemplate's segments are switched whole, so its methods are "
            f"{', '.join(_TEMPLATE_METHODS)}; {method!r} is not one of them."
        )
    if {"baselines", "background", "feature_mask"} & set(options):
        raise OptionError("a TextTemplate's segments carry their own baselines=.")
    adapter, style, start = adapt(model), _InputStyle.of(model), _decoder_start(model)
    full = template_text(template)
    prompt = _tokenized(tokenizer, full, "tokens")
    _check_context(model, tokenizer, len(prompt.ids))
    _check_ids(adapter, tokenizer, prompt.ids)
    logits = _forward(
        adapter, np.asarray([prompt.ids]), None if start is None else [[start]], style
    )
    n = len(template.segments())
    if logits.ndim == 3:
        _check_vocabulary(tokenizer, logits.shape[-1])
        continuation = _continuation(
            adapter, model, tokenizer, prompt.ids, target, max_new_tokens, start, style
        )
        targets, outputs = np.arange(len(continuation)), continuation
    else:
        label = _class_index(model, target, logits[0])
        targets, outputs, continuation = np.asarray([label]), None, []

    def score(presence: np.ndarray) -> np.ndarray:
        keep = np.asarray(presence) > 0.5
        distinct, back = np.unique(keep, axis=0, return_inverse=True)
        texts = [template.text(row) for row in distinct]
        encoded = [list(tokenizer(t).input_ids) for t in texts]
        scores: list[np.ndarray | None] = [None] * len(distinct)
        for length in sorted({len(e) for e in encoded}):  # one batch per length
            rows = [i for i, e in enumerate(encoded) if len(e) == length]
            ids = np.asarray([encoded[i] for i in rows])
            result = _template_outputs(adapter, style, ids, continuation, start, outputs)
            for i, r in zip(rows, result):
                scores[i] = r
        return np.stack(scores)[back.reshape(-1)]

    presence = np.ones((len(targets), n), np.float32)
    reference = {"feature_ablation": "baselines", "kernel_shap": "background"}[method]
    explanation = explain(
        FunctionModel(score, "numpy"),
        presence,
        method,
        target=targets,
        **{reference: np.zeros((1, n), np.float32)},
        **options,
    )
    explanation.backend = adapter.backend
    attributions = np.asarray(explanation.attributions, np.float64)
    names = getattr(getattr(model, "config", None), "id2label", None) or {}
    if continuation:
        output_tokens = [tokenizer.decode([t]) for t in continuation]
        target_scores = np.diagonal(explanation.predictions).astype(np.float64)
        sequence = attributions.sum(axis=0)
    else:
        label = int(targets[0])
        output_tokens = [str(names.get(label, label))]
        target_scores = np.asarray([float(explanation.predictions[0, label])])
        sequence = attributions[0]
    return TextExplanation(
        text=full,
        method=method,
        features="segments",
        input_tokens=template.names(),
        output_tokens=output_tokens,
        attributions=attributions,
        sequence_attribution=sequence,
        target=continuation or [int(targets[0])],
        target_scores=target_scores,
        explanation=explanation,
    )


#: the methods that switch a template's segments whole
_TEMPLATE_METHODS = ("feature_ablation", "kernel_shap")


def _template_outputs(
    adapter: Any,
    style: Any,
    ids: np.ndarray,
    continuation: list[int],
    start: int | None,
    language: Any,
) -> np.ndarray:
    """(rows, T) continuation log-probabilities for prompts of one length (a language
    model), or (rows, classes) logits (a classifier)."""
    if language is None:
        return _forward(adapter, ids, None, style).reshape(len(ids), -1)
    tokens = np.asarray(continuation)
    steps = len(continuation)
    if start is None:
        full = np.concatenate([ids, np.tile(tokens, (len(ids), 1))], axis=1)
        positions, decoder = ids.shape[1] - 1 + np.arange(steps), None
    else:
        full, positions = ids, np.arange(steps)
        decoder = np.tile(np.asarray([start, *continuation[:-1]]), (len(ids), 1))

    def log_probs(raw: Any) -> Any:
        return adapter.token_log_probs(_logits_of(raw), positions, tokens)

    return _forward(adapter, full, decoder, style, output=log_probs)


def _continuation(
    adapter: Any,
    model: Any,
    tokenizer: Any,
    prompt_ids: list[int],
    target: Any,
    max_new_tokens: int,
    start: int | None,
    style: Any,
) -> list[int]:
    """The continuation's token ids: `target` tokenized, or the model's own."""
    if target is None:
        return _greedy(adapter, tokenizer, prompt_ids, max_new_tokens, model, start, style)
    elif isinstance(target, str):
        if not target:
            raise TargetError("target is an empty string: give the continuation to explain.")
        continuation = list(tokenizer.encode(target, add_special_tokens=False))
        if not continuation:
            raise TargetError(f"the tokenizer gives no tokens for target {target!r}.")
        if tokenizer.decode(continuation).strip() != target.strip():
            raise TargetError(
                f"the tokenizer cannot produce target {target!r} (it reads back as "
                f"{tokenizer.decode(continuation)!r}: words outside its vocabulary?); give "
                "a continuation made of the tokenizer's tokens."
            )
    else:
        raise TargetError(
            f"a language model's target is the continuation to explain, a string (or None "
            f"for its own greedy continuation), got {target!r}."
        )
    return continuation


def _attribute(
    request: _Request,
    ids: np.ndarray,
    targets: np.ndarray,
    output: Any,
    decoder: Any,
    layer: str | None,
) -> tuple[np.ndarray, Any]:
    """(rows, features) scores and the `Explanation` they come from (`decoder`: an
    encoder-decoder's decoder ids, one row per row of `ids`)."""
    from .api import explain

    adapter, tokenizer, prompt, method = (
        request.adapter,
        request.tokenizer,
        request.prompt,
        request.method,
    )
    options, style = request.options, request.style
    if "baselines" in options or "background" in options or "feature_mask" in options:
        given = [k for k in ("baselines", "background", "feature_mask") if k in options]
        raise OptionError(
            f"explain_text builds {', '.join(given)} from the tokens; choose the replacement "
            "with baseline_token=<a token string> instead."
        )
    baseline_id = _baseline_id(tokenizer, request.baseline_token)
    positions = [p for group in prompt.features for p in group]
    baseline = ids[:1].copy()
    baseline[0, positions] = baseline_id
    cls = REGISTRY.explainer_class(method)
    kwargs = style.kwargs(ids, decoder)
    if method in _PERTURBATION:
        mask = np.full((1, ids.shape[1]), len(prompt.features))  # the rest: never switched
        for feature, group in enumerate(prompt.features):
            mask[0, group] = feature
        options = {
            **options,
            _PERTURBATION[method]: style.per_input(baseline),
            "feature_mask": style.per_input(mask),
        }
        scorer = FunctionModel(_distinct_rows_scorer(adapter, output, style), "numpy")
        explanation = explain(
            scorer, style.inputs(ids), method, target=targets, forward_kwargs=kwargs, **options
        )
        explanation.backend = adapter.backend  # the model that ran, behind the scorer
        per_position = np.asarray(style.attributions(explanation.attributions), np.float64)
        scores = np.stack([per_position[:, group[0]] for group in prompt.features], axis=1)
        return scores, explanation
    if "layer" not in cls.defaults or tuple(cls.requires) != ("gradients",):
        raise OptionError(
            f"explain_text attributes through the input embedding (gradient methods with a "
            f"layer= option) or switches tokens (feature_ablation, kernel_shap, lime); "
            f"{method!r} is neither."
        )
    embedding = layer or _input_embedding(
        adapter, tokenizer, prompt.ids, None if decoder is None else decoder[:1], style
    )
    if "baselines" in cls.defaults:
        options = {**options, "baselines": style.per_input(baseline)}
    explanation = explain(
        adapter,
        style.inputs(ids),
        method,
        target=targets,
        output=output,
        layer=embedding,
        forward_kwargs=kwargs,
        **options,
    )
    per_position = np.asarray(explanation.attributions, np.float64)
    per_position = per_position.reshape(*per_position.shape[:2], -1).sum(axis=2)
    scores = np.stack([per_position[:, group].sum(axis=1) for group in prompt.features], axis=1)
    return scores, explanation


def _distinct_rows_scorer(adapter: Any, output: Any, style: _InputStyle) -> Any:
    """The model's explained outputs for a batch of ids, run once per distinct row.

    A language model's T rows are one sequence explained for T targets; a perturbation
    method perturbs each row alike, so T rows of the same copy would run T times (16 of
    every 17 forwards wasted for a 16-token continuation). Row t's target reads column
    t of the same outputs, so the distinct rows run once (in the core's chunks) and the
    outputs are spread back: the numbers are those of every row run on its own."""

    def score(*args: np.ndarray, **kwargs: np.ndarray) -> np.ndarray:
        ids = args[0] if args else kwargs[style.name]
        distinct, first, back = np.unique(
            ids, axis=0, return_index=True, return_inverse=True
        )  # (an encoder-decoder's decoder rows are all alike: the first one's is taken)
        previous, adapter.output = adapter.output, output
        try:
            with adapter.session():
                decoder = kwargs.get("decoder_input_ids")
                call = style.call(distinct, None if decoder is None else decoder[first])
                outputs = np.asarray(adapter.forward(call))
        finally:
            adapter.output = previous
        return outputs.reshape(len(distinct), -1)[back.reshape(-1)]

    return score


# -- tokens ----------------------------------------------------------------------------------
def _tokenized(tokenizer: Any, text: str, features: str) -> _Prompt:
    try:
        encoding = tokenizer(text, add_special_tokens=True, return_offsets_mapping=True)
    except (TypeError, NotImplementedError, ValueError):  # slow tokenizers have no offsets
        encoding = tokenizer(text, add_special_tokens=True)
    ids = list(encoding["input_ids"])
    special_ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    plain = [j for j, t in enumerate(ids) if t not in special_ids]
    if not plain:
        raise InputError(f"text {text!r} gives no tokens but special ones: nothing to explain.")
    offsets = encoding.get("offset_mapping") if isinstance(encoding, Mapping) else None

    def span(positions: list[int]) -> str:
        if offsets is not None:
            start, end = offsets[positions[0]][0], offsets[positions[-1]][1]
            if end > start:
                return text[start:end]
        return tokenizer.decode([ids[p] for p in positions])

    if features == "tokens":
        groups = [[j] for j in plain]
    else:
        word_ids = encoding.word_ids() if hasattr(encoding, "word_ids") else None
        if word_ids is None:
            raise OptionError(
                "features='words' needs a fast tokenizer (its word_ids()); load it with "
                "use_fast=True, or explain features='tokens'."
            )
        groups, seen = [], {}
        for j in plain:
            word = word_ids[j]
            if word is None or word not in seen:
                seen[word] = len(groups)
                groups.append([j])
            else:
                groups[seen[word]].append(j)
    return _Prompt(ids=ids, features=groups, names=[span(g) for g in groups])


def prompt_text(prompt: _Prompt) -> str:
    return " ".join(prompt.names)


def _baseline_id(tokenizer: Any, baseline_token: str | None) -> int:
    """The id that replaces a feature's tokens: `baseline_token`'s, else the pad token's
    (else unk, else end-of-sequence: GPT-2 has no pad token)."""
    if baseline_token is not None:
        ids = tokenizer.convert_tokens_to_ids([baseline_token])
        unknown = getattr(tokenizer, "unk_token_id", None)
        if (
            not ids
            or ids[0] is None
            or (ids[0] == unknown and baseline_token != tokenizer.unk_token)
        ):
            raise OptionError(
                f"baseline_token {baseline_token!r} is not one of the tokenizer's tokens; "
                f"e.g. its pad token {getattr(tokenizer, 'pad_token', None)!r}."
            )
        return int(ids[0])
    for name in ("pad_token_id", "unk_token_id", "eos_token_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    raise OptionError(
        "the tokenizer has no pad, unk or end-of-sequence token to replace features with: "
        "pass baseline_token=<a token string>."
    )


def _class_index(model: Any, target: Any, logits: np.ndarray) -> int:
    n_classes = len(logits)
    if target is None:  # the predicted class
        return int(np.argmax(logits))
    if isinstance(target, str):
        labels = getattr(getattr(model, "config", None), "label2id", None) or {}
        if target not in labels:
            raise TargetError(
                f"target {target!r} is not one of the model's labels {sorted(labels)}; "
                "give a label name or a class index."
            )
        return int(labels[target])
    if isinstance(target, (int, np.integer)) and 0 <= int(target) < n_classes:
        return int(target)
    raise TargetError(
        f"target must be a class index below {n_classes} or a label name, got {target!r}."
    )


# -- the model ---------------------------------------------------------------------------------
def _logits_of(raw: Any) -> Any:
    if isinstance(raw, Mapping) and "logits" in raw:
        return raw["logits"]
    if hasattr(raw, "logits"):
        return raw.logits
    if isinstance(raw, (tuple, list)):
        return raw[0]
    return raw


def _forward(
    adapter: Any,
    ids: np.ndarray,
    decoder: Any = None,
    style: _InputStyle | None = None,
    output: Any = None,
) -> np.ndarray:
    """The model's logits for `ids` (NumPy), or `output` of what it returns; `decoder`: an
    encoder-decoder's decoder ids."""
    previous, adapter.output = adapter.output, output or _logits_of
    try:
        with adapter.session():
            return np.asarray(adapter.forward((style or _InputStyle()).call(ids, decoder)))
    finally:
        adapter.output = previous


def _decoder_start(model: Any) -> int | None:
    """An encoder-decoder's decoder start token (None: not an encoder-decoder)."""
    config = getattr(model, "config", None)
    if not getattr(config, "is_encoder_decoder", False):
        return None
    start = getattr(config, "decoder_start_token_id", None)
    if start is None:
        raise InputError(
            "the encoder-decoder's config has no decoder_start_token_id: set it (T5: the "
            "pad token, BART: the end-of-sequence token) so that the decoder can start."
        )
    return int(start)


def _greedy(
    adapter: Any,
    tokenizer: Any,
    ids: list[int],
    steps: int,
    model: Any,
    start: int | None,
    style: _InputStyle | None = None,
) -> list[int]:
    """The model's own continuation: argmax, one token at a time (Captum: generate with
    do_sample=False), stopping after the end-of-sequence token."""
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise OptionError(f"max_new_tokens must be a positive int, got {steps!r}.")
    _check_context(model, tokenizer, (0 if start is not None else len(ids)) + int(steps))
    eos = getattr(tokenizer, "eos_token_id", None)
    continuation: list[int] = []
    for _ in range(int(steps)):
        if start is None:
            logits = _forward(adapter, np.asarray([ids + continuation]), None, style)
        else:
            logits = _forward(adapter, np.asarray([ids]), [[start, *continuation]], style)
        token = int(np.argmax(logits[0, -1]))
        continuation.append(token)
        if token == eos:
            break
    return continuation


def _context_length(model: Any) -> int | None:
    config = getattr(model, "config", None)
    for name in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _check_context(model: Any, tokenizer: Any, n_tokens: int) -> None:
    limit = _context_length(model)
    if limit is not None and n_tokens > limit:
        raise InputError(
            f"{n_tokens} tokens (prompt, special tokens and continuation) do not fit the "
            f"model's context of {limit}; shorten the text or the continuation."
        )


def _input_embedding(
    adapter: Any,
    tokenizer: Any,
    ids: list[int],
    decoder: Any = None,
    style: _InputStyle | None = None,
) -> str:
    """The embedding layer that receives the token ids: of the model's embedding layers
    (token, position, segment), the one whose input is the ids themselves (captured in
    one forward); among several, the first with a row for every token of the tokenizer."""
    rows = _embedding_rows(adapter)
    if not rows:
        raise XaiError(
            "the model has no embedding layer to attribute through (none of its layers is "
            "an Embedding): pass layer=<the layer that embeds the token ids>."
        )
    batch = np.asarray([ids])
    inputs = [f"{name}:input" for name in rows]
    previous, adapter.output = adapter.output, _logits_of
    call = (style or _InputStyle()).call(batch, decoder)
    try:
        with adapter.session():
            try:
                captured = adapter.capture(call, inputs)
            except XaiError:  # a layer that never runs (a tied copy): each on its own
                captured = {}
                for key in inputs:
                    try:
                        captured.update(adapter.capture(call, [key]))
                    except XaiError:
                        continue
    finally:
        adapter.output = previous
    receiving = [
        name
        for name, key in zip(rows, inputs)
        if np.shape(captured.get(key)) == batch.shape and np.array_equal(captured[key], batch)
    ]
    size = len(tokenizer)
    fits = [name for name in receiving if rows[name] >= size] or receiving
    if not fits:
        raise XaiError(
            f"none of the model's embedding layers ({', '.join(rows)}) receives the token "
            "ids on its own (a layer called more than once, such as keras-hub's tied "
            "ReversibleEmbedding that also makes the logits, records its last call): pass "
            "layer=<a layer that embeds them once>, or use a perturbation method "
            "(feature_ablation, kernel_shap, lime)."
        )
    if rows[fits[0]] < size:
        raise InputError(
            f"the tokenizer has {size} tokens and the model's input embedding "
            f"{fits[0]!r} {rows[fits[0]]} rows: it is not this model's tokenizer (load both "
            "from the same checkpoint)."
        )
    return fits[0]


def _embedding_rows(adapter: Any) -> dict[str, int]:
    rows = {}
    for info in adapter.layers():
        if "embed" not in info.kind.lower():
            continue
        try:
            parameters = adapter.layer_parameters(info.name)
        except XaiError:
            continue
        if parameters and parameters[0].ndim == 2:
            rows[info.name] = int(parameters[0].shape[0])
    return rows


def _check_ids(adapter: Any, tokenizer: Any, ids: list[int]) -> None:
    """Ids that no embedding of the model has a row for (another model's tokenizer) are
    refused before they reach an embedding lookup, where they fail with an index error."""
    rows = _embedding_rows(adapter)
    if rows and max(ids) >= max(rows.values()):
        raise InputError(
            f"the tokenizer gives token id {max(ids)} ({len(tokenizer)} tokens) and the "
            f"model's embeddings have at most {max(rows.values())} rows: it is not this "
            "model's tokenizer (load both from the same checkpoint)."
        )


def _check_vocabulary(tokenizer: Any, vocabulary: int) -> None:
    size = len(tokenizer)
    if size > vocabulary:
        raise InputError(
            f"the tokenizer has {size} tokens and the model's vocabulary {vocabulary}: it is "
            "not this model's tokenizer (load both from the same checkpoint)."
        )
