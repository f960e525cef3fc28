"""`evaluate` and `compare`: which explanation can be trusted, on any framework.

Metrics are plugins (entry-point group `xai_core.metrics`) that talk to the
model only through a `MetricContext`, so one implementation scores PyTorch,
Keras, Paddle and ONNX models alike.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .batching import BatchedModel
from .errors import InputError, OptionError, PluginError, XaiError
from .explanation import Explanation
from .inputs import pack_per_input, split_forward_kwargs
from .locks import model_lock
from .metric import Metric, MetricContext, MetricResult
from .progress import Progress
from .registry import REGISTRY
from .validation import checked_inputs

if TYPE_CHECKING:
    from matplotlib.figure import Figure


#: `evaluate`'s default for forward_kwargs and output: those the explanation was made with
SAME: Any = type("Same", (), {"__repr__": lambda self: "<as explained>"})()


def metrics() -> list[str]:
    """Names of the installed evaluation metrics."""
    return list(REGISTRY.metric_table())


def get_metric(metric: str, **options: Any) -> Metric:
    """Build the metric registered as `metric` with its options checked."""
    return REGISTRY.metric_class(metric)(**options)


def evaluate(
    model: Any,
    explanation: Explanation,
    metric: str,
    *,
    details: bool = False,
    forward_kwargs: dict[str, Any] | None | object = SAME,
    output: Any = SAME,
    **options: Any,
) -> Any:
    """Score `explanation` of `model` with `metric`: one float64 per sample.

    The explanation's inputs, target, method and options are reused: a metric
    that re-explains perturbed inputs calls the same method with the same options
    (seed included). So are the `forward_kwargs` and `output` given to `explain`,
    unless given here (`forward_kwargs=None` / `output=None` to score without them; a
    loaded explanation carries neither).
    With `details=True` the `MetricResult` comes back instead (scores, the curve
    behind them where there is one, settled options, `.plot()`).
    """
    from .api import adapt

    if not isinstance(explanation, Explanation):
        raise XaiError(
            f"evaluate() scores an xai_core.Explanation (from xai_core.explain), got a "
            f"{type(explanation).__name__}."
        )
    scorer = get_metric(metric, **options)
    adapter = adapt(model)
    forward_kwargs = explanation.forward_kwargs if forward_kwargs is SAME else forward_kwargs
    output = explanation.output if output is SAME else output
    if explanation.inputs is None:
        raise InputError(
            "the explanation carries no inputs, so nothing can be perturbed and scored (a "
            "slice of explain_dataset results stored without store_inputs=True?). Explain "
            "the inputs with xai_core.explain, or store them with store_inputs=True."
        )
    layout, arrays = checked_inputs(explanation.inputs, adapter.to_numpy)
    x = layout.pack(arrays)
    for name, kind in scorer.per_input_options.items():  # given in the inputs' structure
        if layout.packed and scorer.options.get(name) is not None:
            scorer.options[name] = pack_per_input(kind, scorer.options[name], layout, name, len(x))
    attributions = explanation.attributions
    if attributions is not None:
        attributions = layout.pack_structure(attributions, np.float64)
    _check_explanation(explanation, x, attributions)
    batch_kwargs, constant_kwargs = split_forward_kwargs(forward_kwargs, len(x), adapter.to_numpy)
    batched = BatchedModel(
        adapter,
        scorer.options["internal_batch_size"],
        layout,
        len(x),
        batch_kwargs,
        constant_kwargs,
        Progress(scorer.options["progress"], metric),
    )
    context = MetricContext(
        metric,
        adapter,
        explanation,
        layout,
        x,
        attributions,
        batched,
        forward_kwargs,
        output,
        rerun=rerun_method,
    )
    with model_lock(adapter.model):
        previous, adapter.output = adapter.output, output
        try:
            with adapter.session():
                result = scorer.score(context)
        finally:
            adapter.output = previous
            batched.progress.close()
    _check_scores(scorer, result, len(x))
    result.metric, result.method = metric, explanation.method
    result.options = {**scorer.options, **result.options}
    return result if details else result.scores


def rerun_method(
    method: str,
    options: dict[str, Any],
    adapter: Any,
    inputs: Any,
    target: Any,
    forward_kwargs: dict[str, Any] | None,
    output: Any,
    known_outputs: tuple[int, ...],
) -> Explanation:
    """The explanation's method with its own options (those the method takes, progress
    off) on other inputs or another model: what metrics that re-explain run
    (`MetricContext.reexplain`)."""
    from .api import get_explainer, run
    from .explainer import COMMON_OPTIONS

    allowed = {*REGISTRY.explainer_class(method).defaults, *COMMON_OPTIONS}
    kept = {k: v for k, v in options.items() if k in allowed and k != "progress"}
    explainer = get_explainer(method, progress=False, **kept)
    return run(
        explainer,
        adapter,
        inputs,
        target,
        forward_kwargs=forward_kwargs,
        output=output,
        known_outputs=known_outputs,
    )


def _check_explanation(explanation: Explanation, x: np.ndarray, attributions: Any) -> None:
    """What a metric trusts: one target and one attribution row per input row, finite
    attributions (a NaN would score as a perfectly sparse or faithful explanation)."""
    n = len(x)
    target = np.asarray(explanation.target)
    if target.dtype.kind not in "iu":
        raise InputError(
            f"the explanation's target is {target.dtype}, not output indices: it was not made "
            "by xai_core.explain (or was edited)."
        )
    if target.ndim == 0 or len(target) != n:
        raise InputError(
            f"the explanation has {target.size} target value(s) for {n} input rows: it does "
            "not fit its inputs (was it edited, or cut from another explanation?)."
        )
    if attributions is None:
        return
    values = np.asarray(attributions)
    if values.ndim == 0 or len(values) != n:
        raise InputError(
            f"the explanation has attributions of shape {values.shape} for {n} input rows: "
            "they do not fit its inputs."
        )
    if values.dtype.kind not in "fiub":
        raise InputError(f"the explanation's attributions are {values.dtype}, not numbers.")
    with np.errstate(over="ignore", invalid="ignore"):
        finite = np.isfinite(values).all()
    if not finite:
        rows = np.unique(np.nonzero(~np.isfinite(values))[0])[:5].tolist()
        raise InputError(
            f"the explanation's attributions contain NaN or inf (samples {rows}): a metric "
            "would score them as if they meant something. Explain again (a model that "
            "returns NaN gradients is refused by explain) or drop those samples."
        )


def _check_scores(scorer: Metric, result: Any, n: int) -> None:
    problem = None
    if not isinstance(result, MetricResult):
        problem = f"returned a {type(result).__name__}, not an xai_core.MetricResult"
    elif not isinstance(result.scores, np.ndarray) or result.scores.shape != (n,):
        shape = getattr(result.scores, "shape", type(result.scores).__name__)
        problem = f"returned scores of shape {shape} for {n} samples"
    if problem:
        plugin = REGISTRY.metric_table().get(scorer.name, (None, type(scorer).__module__))[1]
        raise PluginError(
            f"metric {scorer.name!r} ({type(scorer).__qualname__}, plugin {plugin!r}) "
            f"{problem}; this is a bug in that plugin."
        )
    result.scores = result.scores.astype(np.float64, copy=False)


# -- compare ----------------------------------------------------------------------------


@dataclass
class Comparison:
    """Scores of several methods under several metrics on the same model and inputs.

    `scores[method][metric]` holds one score per sample; `results` the full
    `MetricResult`s (curves included); `explanations` what each method returned;
    `seconds` how long each method took to explain the inputs.
    """

    methods: list[str]
    metrics: list[str]
    scores: dict[str, dict[str, np.ndarray]]
    results: dict[str, dict[str, MetricResult]] = field(default_factory=dict)
    explanations: dict[str, Explanation] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    higher_is_better: dict[str, bool | None] = field(default_factory=dict)

    def mean(self, method: str, metric: str) -> float:
        values = self.scores[method][metric]
        return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")

    def best(self, metric: str) -> str | None:
        """The method with the best mean score, or None if the metric has no better end."""
        direction = self.higher_is_better.get(metric)
        if direction is None:
            return None
        means = {m: self.mean(m, metric) for m in self.methods}
        means = {m: v for m, v in means.items() if np.isfinite(v)}
        if not means:
            return None
        return (max if direction else min)(means, key=means.__getitem__)

    def to_markdown(self, digits: int = 4) -> str:
        """Mean score per method and metric; the best of each column in bold, an arrow
        saying which way is better."""
        arrows = {True: " ↑", False: " ↓", None: ""}
        header = ["method", *(f"{m}{arrows[self.higher_is_better.get(m)]}" for m in self.metrics)]
        if self.seconds:
            header.append("explain ms")
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        best = {metric: self.best(metric) for metric in self.metrics}
        for method in self.methods:
            cells = [method]
            for metric in self.metrics:
                text = f"{self.mean(method, metric):.{digits}g}"
                cells.append(f"**{text}**" if best[metric] == method else text)
            if self.seconds:
                cells.append(f"{1000 * self.seconds[method]:.3g}")
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_markdown()

    def to_html(self, digits: int = 4) -> str:
        """One self-contained page: the mean score table (the best per metric marked,
        arrows saying which way is better) and the comparison figure, inline."""
        from .html_pages import figure_image, page, table

        arrows = {True: " ↑", False: " ↓", None: ""}
        header = ["method", *(f"{m}{arrows[self.higher_is_better.get(m)]}" for m in self.metrics)]
        rows = [
            [method, *(f"{self.mean(method, m):.{digits}g}" for m in self.metrics)]
            for method in self.methods
        ]
        best = {metric: self.best(metric) for metric in self.metrics}

        def is_best(row: int, column: int) -> bool:
            return column > 0 and best[self.metrics[column - 1]] == self.methods[row]

        alt = f"mean scores of {', '.join(self.methods)} on {', '.join(self.metrics)}"
        parts = [table(header, rows, is_best), figure_image(self.plot(), alt)]
        return page("Comparison of explanation methods", parts)

    def _repr_html_(self) -> str:
        return self.to_html()

    def plot(self) -> Figure:
        """One panel per metric: the methods' mean scores (best highlighted); then the
        curves of curve metrics (deletion, insertion, model_randomization)."""
        from .plotting import plot_comparison_table

        return plot_comparison_table(self)


def compare(
    model: Any,
    inputs: Any,
    methods: Sequence[str] | Mapping[str, Mapping[str, Any]],
    metrics: Sequence[str] | Mapping[str, Mapping[str, Any]],
    *,
    target: Any = None,
    forward_kwargs: dict[str, Any] | None = None,
    output: Any = None,
    **options: Any,
) -> Comparison:
    """Explain `inputs` with every method and score each explanation with every metric.

    `methods` and `metrics` are names, or mappings of name -> its own options.
    `options` go to every method and metric that has an option of that name (e.g.
    `seed=0`, `internal_batch_size=64`, `progress=False`); a name none of them has is
    refused.
    """
    from .api import explain

    method_options = _named_options(methods, "methods")
    metric_options = _named_options(metrics, "metrics")
    method_classes = {m: REGISTRY.explainer_class(m) for m in method_options}
    metric_classes = {m: REGISTRY.metric_class(m) for m in metric_options}
    _check_shared(options, [*method_classes.values(), *metric_classes.values()])
    comparison = Comparison(
        methods=list(method_options),
        metrics=list(metric_options),
        scores={},
        higher_is_better={m: cls.higher_is_better for m, cls in metric_classes.items()},
    )
    for method, own in method_options.items():
        started = time.perf_counter()
        explanation = explain(
            model,
            inputs,
            method,
            target=target,
            forward_kwargs=forward_kwargs,
            output=output,
            **_accepted(options, method_classes[method]),
            **own,
        )
        comparison.seconds[method] = time.perf_counter() - started
        comparison.explanations[method] = explanation
        comparison.scores[method], comparison.results[method] = {}, {}
        for metric, own_metric in metric_options.items():
            result = evaluate(
                model,
                explanation,
                metric,
                details=True,
                forward_kwargs=forward_kwargs,
                output=output,
                **_accepted(options, metric_classes[metric]),
                **own_metric,
            )
            comparison.results[method][metric] = result
            comparison.scores[method][metric] = result.scores
    return comparison


def _named_options(
    names: Sequence[str] | Mapping[str, Mapping[str, Any]], what: str
) -> dict[str, dict[str, Any]]:
    if isinstance(names, str):
        names = [names]
    if isinstance(names, Mapping):
        bad = [
            k
            for k, v in names.items()
            if not isinstance(k, str) or not (v is None or isinstance(v, Mapping))
        ]
        if bad:
            raise OptionError(
                f"{what} as a dict maps each name to a dict of its options; {bad[0]!r:.40} "
                "does not."
            )
        return {str(k): dict(v or {}) for k, v in names.items()}
    if (
        not isinstance(names, (list, tuple))
        or not names
        or not all(isinstance(n, str) for n in names)
    ):
        raise OptionError(
            f"{what} must be a list of names or a dict of name -> options, got {names!r:.80}."
        )
    return {n: {} for n in names}


def _accepted(options: dict[str, Any], cls: type) -> dict[str, Any]:
    from .explainer import COMMON_OPTIONS

    known = {*cls.defaults, *COMMON_OPTIONS}
    return {k: v for k, v in options.items() if k in known}


def _check_shared(options: dict[str, Any], classes: list[type]) -> None:
    from .explainer import COMMON_OPTIONS

    known = set(COMMON_OPTIONS).union(*(cls.defaults for cls in classes))
    unknown = sorted(set(options) - known)
    if unknown:
        raise OptionError(
            f"no method or metric being compared has the option "
            f"{', '.join(map(repr, unknown))}; options shared by several of them: "
            f"{', '.join(sorted(known))}. Give a single one its own options with "
            "methods={'name': {...}} or metrics={'name': {...}}."
        )
